package runtime

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"
)

// Event is one thing that happened to a container, as the monitor saw it
// (die, restart, health_status). Events are appended, one JSON object a
// line, to <root>/events.jsonl; readers tail the file.
type Event struct {
	Time     time.Time `json:"time"`
	ID       string    `json:"id"`
	Action   string    `json:"action"`
	ExitCode *int      `json:"exitCode,omitempty"`
	Detail   string    `json:"detail,omitempty"`
}

// EventsPath is the file events are appended to.
func (r *Runtime) EventsPath() string { return filepath.Join(r.root, "events.jsonl") }

// AppendEvent records an event; losing one (a full disk) must never stop a
// container, so errors are dropped. One write call per line keeps lines of
// concurrent writers whole (O_APPEND).
func AppendEvent(path string, e any) {
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	// Keep one older file: events are for watching, not an archive.
	if fi, err := os.Stat(path); err == nil && fi.Size() > 8<<20 {
		os.Rename(path, path+".1")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	f.Write(append(b, '\n'))
	f.Close()
}

func (r *Runtime) event(id, action, detail string, code *int) {
	AppendEvent(r.EventsPath(), Event{Time: time.Now().UTC(), ID: id, Action: action, ExitCode: code, Detail: detail})
}
