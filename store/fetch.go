package store

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// blobFetcher gets blobs of one repository with HTTP range requests, so an
// interrupted pull resumes where it stopped. go-containerregistry provides
// the authenticated transport (token or basic auth, from the keychain).
type blobFetcher struct {
	repo   name.Repository
	client *http.Client
}

func newBlobFetcher(ctx context.Context, repo name.Repository, o RegistryOptions) (*blobFetcher, error) {
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	auth, err := authn.Resolve(ctx, kc, repo)
	if err != nil {
		return nil, err
	}
	tr, err := transport.NewWithContext(ctx, repo.Registry, auth, http.DefaultTransport, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	return &blobFetcher{repo: repo, client: &http.Client{Transport: tr}}, nil
}

// get returns the blob from off on, or all of it (start 0) when the
// registry ignores the range.
func (b *blobFetcher) get(ctx context.Context, dgst string, off int64) (io.ReadCloser, int64, error) {
	url := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", b.repo.Registry.Scheme(), b.repo.RegistryStr(), b.repo.RepositoryStr(), dgst)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Body, 0, nil
	case http.StatusPartialContent:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", off)) {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("%w: unexpected Content-Range %q", errHTTP, resp.Header.Get("Content-Range"))
		}
		return resp.Body, off, nil
	case http.StatusRequestedRangeNotSatisfiable:
		// The partial is as long as the blob (or longer): start over.
		resp.Body.Close()
		return b.get(ctx, dgst, 0)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	return nil, 0, fmt.Errorf("%w: GET %s: %s %s", errHTTP, url, resp.Status, strings.TrimSpace(string(msg)))
}

type readCloser struct {
	io.Reader
	io.Closer
}
