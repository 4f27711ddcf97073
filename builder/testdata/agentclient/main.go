// agentclient asks the SSH agent at $SSH_AUTH_SOCK for its identities and
// prints how many it has and the first one's comment. The builder's tests
// build it statically and run it inside RUN --mount=type=ssh steps.
package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
)

func main() {
	c, err := net.Dial("unix", os.Getenv("SSH_AUTH_SOCK"))
	if err != nil {
		fmt.Println("dial:", err)
		os.Exit(1)
	}
	c.Write([]byte{0, 0, 0, 1, 11}) // SSH_AGENTC_REQUEST_IDENTITIES
	var n uint32
	if err := binary.Read(c, binary.BigEndian, &n); err != nil {
		fmt.Println("read:", err)
		os.Exit(1)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c, body); err != nil || body[0] != 12 {
		fmt.Println("bad answer")
		os.Exit(1)
	}
	keys := binary.BigEndian.Uint32(body[1:5])
	comment := ""
	if keys > 0 {
		rest := body[5:]
		l := binary.BigEndian.Uint32(rest)
		rest = rest[4+l:]
		l = binary.BigEndian.Uint32(rest)
		comment = string(rest[4 : 4+l])
	}
	fmt.Printf("keys=%d comment=%s\n", keys, comment)
}
