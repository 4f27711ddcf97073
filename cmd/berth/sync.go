package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/gitops"
	"github.com/berth-dev/berth/reconciler"
	"github.com/berth-dev/berth/secrets/sops"
)

type syncOptions struct {
	ref, path     string
	interval      time.Duration
	healthTimeout time.Duration
	resync        time.Duration
	prune         bool
	listen        string
	secretFile    string
	ageKeyFile    string
}

func init() {
	register(func() *cobra.Command {
		var o syncOptions
		cmd := &cobra.Command{
			Use:   "sync REPO",
			Short: "Follow a git repository: deploy every commit that changes the project (GitOps)",
			Long: `berth sync clones REPO (a local path, file://, http(s):// or ssh:// URL) shallowly
under the state root and follows --ref: on every --interval and every webhook
delivery it fetches, checks the new revision out, loads the project under --path
and converges the machine to it. A revision that does not load, build or become
healthy within --health-timeout is rolled back to the last healthy one and not
retried until a new commit arrives. Between commits drift is repaired.
The webhook secret comes from --webhook-secret-file or BERTH_WEBHOOK_SECRET.
Files of the project encrypted with SOPS for age recipients (env files, env_file,
secret and config files, compose files) are decrypted on apply with the age
identities of --age-key-file, SOPS_AGE_KEY, SOPS_AGE_KEY_FILE and
~/.config/sops/age/keys.txt; the plaintext never lands in the checkout.`,
			Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return runSync(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], o)
			},
		}
		f := cmd.Flags()
		f.StringVar(&o.ref, "ref", "", "Branch or tag to follow (default: the remote's HEAD)")
		f.StringVar(&o.path, "path", "", "Directory of the project inside the repository")
		f.DurationVar(&o.interval, "interval", 30*time.Second, "How often to fetch")
		f.DurationVar(&o.healthTimeout, "health-timeout", 2*time.Minute, "How long a new revision has to become healthy before it is rolled back")
		f.DurationVar(&o.resync, "resync", 0, "Drift repair period between commits (default: --interval)")
		f.BoolVar(&o.prune, "prune", false, "Remove services deleted from the repository")
		f.StringVar(&o.listen, "webhook-listen", "", "Address for webhook deliveries and /metrics, e.g. 127.0.0.1:9090")
		f.StringVar(&o.secretFile, "webhook-secret-file", "", "File holding the webhook HMAC secret")
		f.StringVar(&o.ageKeyFile, "age-key-file", "", "File of age identities for SOPS-encrypted files (besides SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, ~/.config/sops/age/keys.txt)")
		cmd.AddCommand(syncStatusCmd(), syncHistoryCmd(), syncRollbackCmd())
		return cmd
	})
}

func runSync(ctx context.Context, stdout, stderr io.Writer, url string, o syncOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	secret := []byte(os.Getenv("BERTH_WEBHOOK_SECRET"))
	if o.secretFile != "" {
		b, err := os.ReadFile(o.secretFile)
		if err != nil {
			return err
		}
		secret = []byte(strings.TrimSpace(string(b)))
	}
	if o.ageKeyFile != "" {
		abs, err := filepath.Abs(o.ageKeyFile)
		if err != nil {
			return err
		}
		o.ageKeyFile = abs
		// a key file that cannot be read is said now, not at the first apply
		if _, err := sops.LoadKeys(nil, o.ageKeyFile); err != nil {
			return err
		}
	}
	d, err := nativeDriver(ctx)
	if err != nil {
		return err
	}
	if !strings.Contains(url, "://") && !strings.Contains(url, "@") {
		if abs, err := filepath.Abs(url); err == nil {
			url = abs
		}
	}
	c, err := gitops.New(gitops.Options{
		URL: url, Ref: o.ref, Path: o.path,
		Files: global.files, ProjectName: global.projectName, Profiles: global.profiles, EnvFiles: global.envFiles,
		Interval: o.interval, HealthTimeout: o.healthTimeout, Resync: o.resync, Prune: o.prune,
		Secret: secret, WebhookListen: o.listen, AgeKeyFile: o.ageKeyFile,
		StateDir: gitops.StateDir(global.root, url, o.ref, o.path),
		Driver:   d,
		Locker: func(project string) reconciler.Locker {
			return reconciler.FileLock(filepath.Join(global.root, "projects", project+".lock"))
		},
		Exec: reconciler.ExecOptions{Parallel: global.parallel, OnEvent: func(e reconciler.Event) {
			printSyncEvent(stdout, e)
		}},
		Log: stderr,
	})
	if err != nil {
		return err
	}
	err = c.Run(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// syncDirs returns the syncs a subcommand acts on: the one --name names,
// else all of them.
func syncDirs(name string) ([]string, error) {
	all, err := gitops.Syncs(global.root)
	if err != nil {
		return nil, err
	}
	if name == "" {
		if len(all) == 0 {
			return nil, errors.New("no berth sync has run under " + global.root)
		}
		return all, nil
	}
	for _, d := range all {
		if filepath.Base(d) == name {
			return []string{d}, nil
		}
	}
	return nil, fmt.Errorf("no sync named %s (berth sync status lists them)", name)
}

// oneSync is syncDirs for commands that need exactly one.
func oneSync(name string) (string, error) {
	dirs, err := syncDirs(name)
	if err != nil {
		return "", err
	}
	if len(dirs) > 1 {
		var names []string
		for _, d := range dirs {
			names = append(names, filepath.Base(d))
		}
		return "", fmt.Errorf("several syncs: choose one with --name (%s)", strings.Join(names, ", "))
	}
	return dirs[0], nil
}

func syncStatusCmd() *cobra.Command {
	var name, format string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the applied and wanted revisions, the sync state and the services' health",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dirs, err := syncDirs(name)
			if err != nil {
				return err
			}
			d, err := nativeDriver(cmd.Context())
			if err != nil {
				return err
			}
			var all []*gitops.Status
			for _, dir := range dirs {
				s, err := gitops.ReadStatus(cmd.Context(), dir, d)
				if err != nil {
					return err
				}
				all = append(all, s)
			}
			if format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if name != "" {
					return enc.Encode(all[0])
				}
				return enc.Encode(all)
			}
			for _, s := range all {
				printSyncStatus(cmd.OutOrStdout(), s)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "The sync to show (default: all)")
	cmd.Flags().StringVar(&format, "format", "table", "Output format: table or json")
	return cmd
}

func printSyncStatus(w io.Writer, s *gitops.Status) {
	fmt.Fprintf(w, "Name:     %s\nRepo:     %s (ref %s, path %s)\nProject:  %s\n", s.Name, s.URL, orDash(s.Ref), orDash(s.Path), s.Project)
	fmt.Fprintf(w, "State:    %s\nApplied:  %s\nWanted:   %s", s.State, orDash(s.Applied), orDash(s.Wanted))
	if s.Pinned {
		fmt.Fprint(w, " (pinned)")
	}
	fmt.Fprintln(w)
	if s.LastError != "" {
		fmt.Fprintf(w, "Error:    %s\n", s.LastError)
	}
	if s.FetchError != "" {
		fmt.Fprintf(w, "Fetch:    %s\n", s.FetchError)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tCONTAINERS\tRUNNING\tHEALTH")
	for _, svc := range s.Services {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", svc.Name, svc.Containers, svc.Running, svc.Health)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func syncHistoryCmd() *cobra.Command {
	var name, format string
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List every revision applied, oldest first, with its result and changes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := oneSync(name)
			if err != nil {
				return err
			}
			r, err := gitops.LoadRecord(dir)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if format == "json" {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(r.History)
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REVISION\tSTARTED\tDURATION\tRESULT\tSUBJECT")
			for _, e := range r.History {
				dur := "-"
				if !e.Finished.IsZero() {
					dur = e.Finished.Sub(e.Started).Round(time.Millisecond).String()
				}
				result := e.Result
				if e.Pinned {
					result += " (pinned)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Revision[:12], e.Started.Local().Format(time.DateTime), dur, result, e.Subject)
				if e.Error != "" {
					fmt.Fprintf(tw, "\t\t\terror:\t%s\n", e.Error)
				}
				for _, c := range e.Changes {
					fmt.Fprintf(tw, "\t\t\t\t  %s\n", c)
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "The sync (needed when several ran)")
	cmd.Flags().StringVar(&format, "format", "table", "Output format: table or json")
	return cmd
}

func syncRollbackCmd() *cobra.Command {
	var name string
	var unpin bool
	cmd := &cobra.Command{
		Use:   "rollback REV | --unpin",
		Short: "Pin an earlier revision until the next commit (or --unpin)",
		Args: func(cmd *cobra.Command, args []string) error {
			if unpin {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := oneSync(name)
			if err != nil {
				return err
			}
			rev := ""
			if !unpin {
				rev = args[0]
			}
			if err := gitops.WritePinRequest(dir, rev); err != nil {
				return err
			}
			if unpin {
				fmt.Fprintln(cmd.OutOrStdout(), "unpin requested: the running berth sync follows the branch again")
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "rollback to %s requested: the running berth sync applies it (berth sync status shows it)\n", rev)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "The sync (needed when several ran)")
	cmd.Flags().BoolVar(&unpin, "unpin", false, "Remove the pin and follow the branch again")
	return cmd
}

// printSyncEvent prints one line per finished operation of an apply or a
// drift repair, the plan's numbering included.
func printSyncEvent(w io.Writer, e reconciler.Event) {
	if e.Phase == reconciler.Started {
		return
	}
	line := fmt.Sprintf("#%d %s %s %s", e.Op.ID, e.Op.Object, e.Op.Kind, e.Phase)
	if e.Err != nil {
		line += ": " + e.Err.Error()
	}
	fmt.Fprintln(w, line)
}
