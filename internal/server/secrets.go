package server

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"sync"

	"github.com/ferryci/ferry/internal/api"
	"github.com/ferryci/ferry/internal/store"
)

// maxSecretSize bounds a secret's value.
const maxSecretSize = 64 << 10

var secretNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`) })

// buildEvents are the events a secret may be limited to.
var buildEvents = []string{store.EventPush, store.EventPullRequest, store.EventTag, store.EventCron,
	store.EventCustom, store.EventPromote, store.EventRollback}

type secretJSON = api.Secret

func toSecretJSON(sec *store.Secret, slug string) *secretJSON {
	ev := sec.Events
	if ev == nil {
		ev = []string{}
	}
	return &secretJSON{ID: sec.ID, Name: sec.Name, Repo: slug, Events: ev, AllowPullRequest: sec.AllowPullRequest,
		Created: sec.Created, Updated: sec.Updated}
}

type secretRequest = api.SecretRequest

// secretScope returns the repo a secret route is about (nil for the global
// routes, which only administrators reach) after checking that the caller
// is the repo's admin.
func (s *Server) secretScope(r *http.Request) (repoID int64, slug string, err error) {
	if r.PathValue("owner") == "" {
		return 0, "", nil
	}
	repo, err := s.repoAccess(r, store.RoleAdmin)
	if err != nil {
		return 0, "", err
	}
	return repo.ID, repo.Slug, nil
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) error {
	repoID, slug, err := s.secretScope(r)
	if err != nil {
		return err
	}
	secs, err := s.store.Secrets.List(r.Context(), repoID)
	if err != nil {
		return err
	}
	out := make([]*secretJSON, 0, len(secs))
	for _, sec := range secs {
		out = append(out, toSecretJSON(sec, slug))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// findSecret loads the secret named by the {secret} path value.
func (s *Server) findSecret(ctx context.Context, r *http.Request, repoID int64) (*store.Secret, error) {
	name := r.PathValue("secret")
	sec, err := s.store.Secrets.Find(ctx, repoID, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("secret %q not found", name)
	}
	return sec, err
}

func (s *Server) getSecret(w http.ResponseWriter, r *http.Request) error {
	repoID, slug, err := s.secretScope(r)
	if err != nil {
		return err
	}
	sec, err := s.findSecret(r.Context(), r, repoID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toSecretJSON(sec, slug))
	return nil
}

func (s *Server) createSecret(w http.ResponseWriter, r *http.Request) error {
	repoID, slug, err := s.secretScope(r)
	if err != nil {
		return err
	}
	var req secretRequest
	if err := decodeBody(w, r, &req, maxBodySize, false); err != nil {
		return err
	}
	if req.Name == nil {
		return badRequest("name", "name is required")
	}
	if req.Value == nil {
		return badRequest("value", "value is required")
	}
	sec := &store.Secret{RepoID: repoID}
	if err := s.applySecret(sec, &req, ""); err != nil {
		return err
	}
	if err := s.store.Secrets.Create(r.Context(), sec); errors.Is(err, store.ErrConflict) {
		return conflict("name", "a secret named %q exists", sec.Name)
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toSecretJSON(sec, slug))
	return nil
}

func (s *Server) updateSecret(w http.ResponseWriter, r *http.Request) error {
	repoID, slug, err := s.secretScope(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	sec, err := s.findSecret(ctx, r, repoID)
	if err != nil {
		return err
	}
	var req secretRequest
	if err := decodeBody(w, r, &req, maxBodySize, false); err != nil {
		return err
	}
	oldName := sec.Name
	if err := s.applySecret(sec, &req, oldName); err != nil {
		return err
	}
	if err := s.store.Secrets.Update(ctx, sec); errors.Is(err, store.ErrConflict) {
		return conflict("name", "a secret named %q exists", sec.Name)
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toSecretJSON(sec, slug))
	return nil
}

// applySecret validates req and copies it into sec, encrypting the value.
// oldName is the secret's stored name, whose value is re-encrypted when
// only the name changes (the name is bound to the ciphertext).
func (s *Server) applySecret(sec *store.Secret, req *secretRequest, oldName string) error {
	if req.Name != nil {
		if !secretNameRE().MatchString(*req.Name) {
			return badRequest("name", "name %q must be 1 to 128 letters, digits, '.', '_' or '-'", *req.Name)
		}
		sec.Name = *req.Name
	}
	if req.Events != nil {
		for _, ev := range *req.Events {
			if !slices.Contains(buildEvents, ev) {
				return badRequest("events", "event %q is not one of %v", ev, buildEvents)
			}
		}
		sec.Events = slices.Clone(*req.Events)
	}
	if req.AllowPullRequest != nil {
		sec.AllowPullRequest = *req.AllowPullRequest
	}
	var plain []byte
	switch {
	case req.Value != nil:
		if len(*req.Value) > maxSecretSize {
			return badRequest("value", "value is larger than %d bytes", maxSecretSize)
		}
		plain = []byte(*req.Value)
	case oldName != "" && oldName != sec.Name:
		var err error
		if plain, err = s.sealer.open(sec.RepoID, oldName, sec.Value); err != nil {
			return err
		}
	default:
		return nil
	}
	sealed, err := s.sealer.seal(sec.RepoID, sec.Name, plain)
	if err != nil {
		return err
	}
	sec.Value = sealed
	return nil
}

func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request) error {
	repoID, _, err := s.secretScope(r)
	if err != nil {
		return err
	}
	sec, err := s.findSecret(r.Context(), r, repoID)
	if err != nil {
		return err
	}
	if err := s.store.Secrets.Delete(r.Context(), sec.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// buildSecrets returns the decrypted secrets a build may see: the repo's
// and the global ones (a repo secret hides a global one of the same name),
// limited to those whose events include the build's event, and for a pull
// request from a fork to those that allow it.
func (s *Server) buildSecrets(ctx context.Context, b *store.Build) (map[string]string, error) {
	return s.openSecrets(ctx, b.RepoID, func(sec *store.Secret) bool {
		return (len(sec.Events) == 0 || slices.Contains(sec.Events, b.Event)) && (!b.Fork || sec.AllowPullRequest)
	})
}

// deploySecrets returns the decrypted secrets named that a deployment of
// a service of repo repoID may use in its notify: values: the repo's and
// the global ones limited to no event, or to push or promote (a deployment
// follows a push to the default branch, or a promotion).
func (s *Server) deploySecrets(ctx context.Context, repoID int64, names []string) (map[string]string, error) {
	return s.openSecrets(ctx, repoID, func(sec *store.Secret) bool {
		return slices.Contains(names, sec.Name) && (len(sec.Events) == 0 ||
			slices.Contains(sec.Events, store.EventPush) || slices.Contains(sec.Events, store.EventPromote))
	})
}

// openSecrets decrypts the secrets of repo repoID, and the global ones,
// that allow says the caller may see.
func (s *Server) openSecrets(ctx context.Context, repoID int64, allow func(*store.Secret) bool) (map[string]string, error) {
	secs, err := s.store.Secrets.ListForBuild(ctx, repoID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(secs))
	for _, sec := range secs {
		if !allow(sec) {
			continue
		}
		plain, err := s.sealer.open(sec.RepoID, sec.Name, sec.Value)
		if err != nil {
			return nil, err
		}
		out[sec.Name] = string(plain)
	}
	return out, nil
}
