package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/driver/native"
	"github.com/berth-dev/berth/store"
)

// `berth images` is docker compose's: the images the project's containers
// use, one line per container. The layer store's own list is
// `berth image ls` (docker image ls).
func init() {
	register(func() *cobra.Command {
		var format string
		var quiet bool
		c := &cobra.Command{
			Use:   "images [OPTIONS] [SERVICE...]",
			Short: "List images used by the created containers",
			RunE: func(cmd *cobra.Command, args []string) error {
				if format != "table" && format != "json" {
					return fmt.Errorf("--format: unknown format %q (want table or json)", format)
				}
				t, err := openProject(cmd.Context())
				if err != nil {
					return err
				}
				cs, err := t.containers(cmd.Context(), args, true)
				if err != nil {
					return err
				}
				s, err := openImageStore()
				if err != nil {
					return err
				}
				return printProjectImages(cmd.OutOrStdout(), projectImages(s, cs), format, quiet)
			},
		}
		c.Flags().StringVar(&format, "format", "table", "Format the output. Values: [table | json]")
		c.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display IDs")
		return c
	})
}

// projectImage is one container's image, with compose's JSON field names
// (cmd/compose/images.go).
type projectImage struct {
	ID            string     `json:"ID"`
	ContainerName string     `json:"ContainerName"`
	Repository    string     `json:"Repository"`
	Tag           string     `json:"Tag"`
	Platform      string     `json:"Platform"`
	Size          int64      `json:"Size"`
	Created       *time.Time `json:"Created,omitempty"`
	LastTagTime   *time.Time `json:"LastTagTime,omitempty"`
}

// projectImages resolves the image of each container: by the digest it was
// created from (what it really runs, even when its tag has moved since),
// else by its reference. A container whose image is gone from the store
// keeps its line with what the container knows.
func projectImages(s *store.Store, cs []native.ContainerInfo) []projectImage {
	out := make([]projectImage, 0, len(cs))
	for _, c := range cs {
		pi := projectImage{ContainerName: c.Name}
		pi.Repository, pi.Tag = splitRef(c.Image)
		var img *store.Image
		var err error
		if c.ImageDigest != "" {
			img, err = s.Resolve(c.ImageDigest)
		}
		if img == nil || err != nil {
			img, err = s.Resolve(c.Image)
		}
		if err == nil && img != nil {
			pi.ID = img.ConfigDigest.String()
			pi.Size = img.Size()
			pi.Platform = img.Config.OS + "/" + img.Config.Architecture
			if img.Config.Variant != "" {
				pi.Platform += "/" + img.Config.Variant
			}
			pi.Created = img.Config.Created
			if !img.Created.IsZero() {
				t := img.Created
				pi.LastTagTime = &t
			}
			if pi.Repository == "" && len(img.Names) > 0 {
				pi.Repository, pi.Tag = splitRef(img.Names[0])
			}
		}
		out = append(out, pi)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ContainerName < out[j].ContainerName })
	return out
}

// splitRef gives a reference's familiar repository and its tag ("" when
// it has none, as for name@sha256:…).
func splitRef(ref string) (repo, tag string) {
	if ref == "" {
		return "", ""
	}
	r, err := store.ParseReference(ref)
	if err != nil {
		return ref, ""
	}
	return store.FamiliarName(r.Name()), r.Tag
}

// printProjectImages prints as docker compose images does: -q the image
// IDs without the algorithm, each once; json one array; table sorted by
// container with compose's columns.
func printProjectImages(w io.Writer, imgs []projectImage, format string, quiet bool) error {
	if quiet {
		seen := map[string]bool{}
		for _, im := range imgs {
			id := strings.TrimPrefix(im.ID, "sha256:")
			if id != "" && !seen[id] {
				seen[id] = true
				fmt.Fprintln(w, id)
			}
		}
		return nil
	}
	if format == "json" {
		b, err := json.Marshal(imgs)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	return printRows(w, "table", imgs, "CONTAINER\tREPOSITORY\tTAG\tPLATFORM\tIMAGE ID\tSIZE\tCREATED", func(im projectImage) string {
		repo, tag, id, size, created := im.Repository, im.Tag, "", "", "N/A"
		if repo == "" {
			repo = "<none>"
		}
		if tag == "" {
			tag = "<none>"
		}
		if im.ID != "" {
			id = strings.TrimPrefix(im.ID, "sha256:")[:12]
			size = humanSize(im.Size)
		}
		if im.Created != nil {
			created = humanAgo(im.Created)
		}
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", im.ContainerName, repo, tag, im.Platform, id, size, created)
	})
}
