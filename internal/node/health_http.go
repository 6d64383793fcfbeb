package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/ferryci/ferry/internal/nodeproto"
)

func init() {
	registerProbe("http", probeKind{
		validate: func(hc *nodeproto.HealthCheck) error {
			u, err := url.Parse(hc.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("url %q: the http check needs an http:// or https:// URL", hc.URL)
			}
			return nil
		},
		new: func(hc *nodeproto.HealthCheck, _ runFunc) Probe { return httpProbe{url: hc.URL} },
	})
}

// httpProbe is healthy when a GET answers 2xx or 3xx (redirects are not
// followed).
type httpProbe struct{ url string }

var probeClient = &http.Client{
	Transport:     &http.Transport{DisableKeepAlives: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func (p httpProbe) Probe(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	res, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode >= 400 {
		return errors.New("GET " + p.url + ": " + res.Status)
	}
	return nil
}
