package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/store"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
)

func init() {
	register(newPullCmd)
	register(newPushCmd)
}

func newImageImportCmd() *cobra.Command {
	var cmdArgs, entrypoint, env []string
	var workdir string
	c := &cobra.Command{
		Use:   "import TAR|DIR [NAME[:TAG]]",
		Short: "Create an image from a root filesystem tarball or directory",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext(cmd)
			defer cancel()
			s, err := openImageStore()
			if err != nil {
				return err
			}
			ref := ""
			if len(args) == 2 {
				ref = args[1]
			}
			src := args[0]
			if src == "-" {
				if src, err = spool(s, os.Stdin); err != nil {
					return err
				}
				defer os.Remove(src)
			}
			cfg := ocispec.ImageConfig{Cmd: cmdArgs, Entrypoint: entrypoint, Env: env, WorkingDir: workdir}
			img, err := s.ImportRootfs(ctx, src, ref, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), img.ConfigDigest)
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVar(&cmdArgs, "cmd", nil, "Default command (repeat for each argument)")
	f.StringArrayVar(&entrypoint, "entrypoint", nil, "Entrypoint (repeat for each argument)")
	f.StringArrayVarP(&env, "env", "e", nil, "Environment variable KEY=VALUE")
	f.StringVarP(&workdir, "workdir", "w", "", "Working directory")
	return c
}

// spool copies stdin into the store's scratch space: import needs a file.
func spool(s *store.Store, r io.Reader) (string, error) {
	f, err := os.CreateTemp(filepath.Join(s.Root(), "tmp"), "stdin-")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func newImageLoadCmd() *cobra.Command {
	var input string
	var quiet bool
	c := &cobra.Command{
		Use:   "load [-i FILE]",
		Short: "Load images from a docker-archive or OCI archive (tar, optionally compressed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext(cmd)
			defer cancel()
			s, err := openImageStore()
			if err != nil {
				return err
			}
			var r io.Reader = os.Stdin
			if input != "" && input != "-" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			imgs, err := s.Load(ctx, r)
			if err != nil {
				return err
			}
			for _, img := range imgs {
				if quiet {
					continue
				}
				if len(img.Names) == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "Loaded image ID:", img.ConfigDigest)
				}
				for _, n := range img.Names {
					fmt.Fprintln(cmd.OutOrStdout(), "Loaded image:", familiar(n))
				}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&input, "input", "i", "", "Read from a tar archive file instead of stdin")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress the load output")
	return c
}

func newImageSaveCmd() *cobra.Command {
	var output, format string
	c := &cobra.Command{
		Use:   "save [-o FILE] IMAGE [IMAGE...]",
		Short: "Save images to a tar archive (docker-archive or oci-archive)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext(cmd)
			defer cancel()
			s, err := openImageStore()
			if err != nil {
				return err
			}
			if output == "" || output == "-" {
				if st, err := os.Stdout.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
					return fmt.Errorf("refusing to write an archive to a terminal: use -o FILE or redirect")
				}
				return s.Save(ctx, cmd.OutOrStdout(), format, args...)
			}
			// Write beside the target and rename: an interrupted save
			// never leaves a truncated archive under the name asked for.
			f, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+"-*")
			if err != nil {
				return err
			}
			defer os.Remove(f.Name())
			if err := s.Save(ctx, f, format, args...); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			os.Chmod(f.Name(), 0o644)
			return os.Rename(f.Name(), output)
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "", "Write to a file instead of stdout")
	c.Flags().StringVar(&format, "format", store.FormatDocker, "Archive format: docker-archive or oci-archive")
	return c
}

func registryOptions(cmd *cobra.Command, platform string, insecure, quiet bool) store.RegistryOptions {
	o := store.RegistryOptions{Platform: platform, Insecure: insecure}
	if !quiet && global.progress != "quiet" {
		o.Progress = cmd.OutOrStdout()
		st, err := os.Stdout.Stat()
		isTTY := err == nil && st.Mode()&os.ModeCharDevice != 0
		o.TTY = global.progress == "tty" || global.progress == "auto" && isTTY
	}
	return o
}

func newPullCmd() *cobra.Command {
	var platform string
	var insecure, quiet bool
	c := &cobra.Command{
		Use:   "pull NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext(cmd)
			defer cancel()
			s, err := openImageStore()
			if err != nil {
				return err
			}
			img, err := s.Pull(ctx, args[0], registryOptions(cmd, platform, insecure, quiet))
			if err != nil {
				return err
			}
			if quiet {
				fmt.Fprintln(cmd.OutOrStdout(), img.Ref)
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), "Status: Downloaded", familiar(img.Ref))
			}
			return nil
		},
	}
	c.Flags().StringVar(&platform, "platform", "", "Platform os/arch[/variant] (default: this machine's)")
	c.Flags().BoolVar(&insecure, "insecure", false, "Use plain HTTP (always on for loopback registries)")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress progress output")
	return c
}

func newPushCmd() *cobra.Command {
	var insecure, quiet bool
	c := &cobra.Command{
		Use:   "push NAME[:TAG]",
		Short: "Upload an image to a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext(cmd)
			defer cancel()
			s, err := openImageStore()
			if err != nil {
				return err
			}
			return s.Push(ctx, args[0], "", registryOptions(cmd, "", insecure, quiet))
		},
	}
	c.Flags().BoolVar(&insecure, "insecure", false, "Use plain HTTP (always on for loopback registries)")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress progress output")
	return c
}
