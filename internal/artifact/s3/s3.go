// Package s3 registers the s3:// artifact store: any S3-compatible object
// store (AWS S3, MinIO, versitygw, Ceph RGW, …). Link it in with a blank
// import; URLs are s3://bucket/key, and the endpoint and credentials come
// from artifact.S3Options.
//
// The store needs three REST calls (GET with a Range, PUT, and, in tests,
// a bucket PUT), which it makes with net/http, signed with Signature
// Version 4 by the AWS SDK's signer. The whole SDK client is not linked:
// its initialisation alone added 1.5 MiB to the peak memory of every
// `ferry exec` (docs/dependencies.md).
package s3

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/ferryci/ferry/internal/artifact"
)

func init() { artifact.Register(newStore, "s3") }

// emptySHA256 is the sha256 of an empty body, signed for GETs.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

type store struct {
	base   string // scheme://endpoint
	region string
	creds  *aws.Credentials // nil: anonymous
	signer *v4.Signer
	hc     *http.Client
}

var _ artifact.Store = (*store)(nil)

func newStore(o artifact.Options) (artifact.Store, error) {
	o3 := o.S3
	s := &store{region: o3.Region, hc: o.HTTP}
	if s.region == "" {
		s.region = "us-east-1"
	}
	endpoint := o3.Endpoint
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	if strings.Contains(endpoint, "/") {
		return nil, fmt.Errorf("s3 endpoint %q: want host[:port], without a scheme or path", endpoint)
	}
	s.base = "https://" + endpoint
	if o3.Insecure {
		s.base = "http://" + endpoint
	}
	if o3.AccessKey != "" || o3.SecretKey != "" {
		s.creds = &aws.Credentials{AccessKeyID: o3.AccessKey, SecretAccessKey: o3.SecretKey}
	}
	// S3 signs the path as sent, without escaping it a second time.
	s.signer = v4.NewSigner(func(so *v4.SignerOptions) { so.DisableURIPathEscaping = true })
	if s.hc == nil {
		s.hc = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			ResponseHeaderTimeout: time.Minute,
			IdleConnTimeout:       90 * time.Second,
		}}
	}
	return s, nil
}

// request builds a signed path-style request for bucket/key.
func (s *store) request(ctx context.Context, method, bucket, key string, body io.Reader, payload string) (*http.Request, error) {
	u, err := url.Parse(s.base)
	if err != nil {
		return nil, err
	}
	u.Path = "/" + bucket
	if key != "" {
		u.Path += "/" + key
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if s.creds != nil {
		req.Header.Set("X-Amz-Content-Sha256", payload)
		if err := s.signer.SignHTTP(ctx, *s.creds, req, payload, "s3", s.region, time.Now()); err != nil {
			return nil, fmt.Errorf("signing: %w", err)
		}
	}
	return req, nil
}

func split(u *url.URL) (bucket, key string, err error) {
	key = strings.TrimPrefix(u.Path, "/")
	if u.Host == "" || key == "" {
		return "", "", fmt.Errorf("s3 url %q: want s3://bucket/key", u.Redacted())
	}
	return u.Host, key, nil
}

func (s *store) Open(ctx context.Context, u *url.URL, offset int64) (io.ReadCloser, error) {
	bucket, key, err := split(u)
	if err != nil {
		return nil, err
	}
	req, err := s.request(ctx, http.MethodGet, bucket, key, nil, emptySHA256)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		// Not signed: a header added after signing is sent as is.
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	res, err := s.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.Redacted(), err)
	}
	switch {
	case res.StatusCode == http.StatusOK && offset == 0, res.StatusCode == http.StatusPartialContent && offset > 0:
		return res.Body, nil
	case res.StatusCode == http.StatusOK:
		if _, err := io.CopyN(io.Discard, res.Body, offset); err != nil {
			res.Body.Close()
			return nil, fmt.Errorf("%s: skipping %d bytes: %w", u.Redacted(), offset, err)
		}
		return res.Body, nil
	default:
		defer res.Body.Close()
		return nil, apiError(u, res)
	}
}

// Put uploads in one request, its payload unsigned (the artifact's own
// sha256 is what nodes verify).
func (s *store) Put(ctx context.Context, u *url.URL, r io.Reader, size int64) error {
	bucket, key, err := split(u)
	if err != nil {
		return err
	}
	req, err := s.request(ctx, http.MethodPut, bucket, key, r, "UNSIGNED-PAYLOAD")
	if err != nil {
		return err
	}
	if size >= 0 {
		req.ContentLength = size
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", u.Redacted(), err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return apiError(u, res)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	return nil
}

// CreateBucket creates a bucket (used by tests and first-time setups).
func CreateBucket(ctx context.Context, o artifact.Options, bucket string) error {
	st, err := newStore(o)
	if err != nil {
		return err
	}
	s := st.(*store)
	req, err := s.request(ctx, http.MethodPut, bucket, "", nil, emptySHA256)
	if err != nil {
		return err
	}
	res, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return apiError(&url.URL{Scheme: "s3", Host: bucket}, res)
	}
	return nil
}

// apiError reads S3's XML error: <Error><Code>…</Code><Message>…</Message>.
func apiError(u *url.URL, res *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(res.Body, 8192))
	code, msg := xmlField(b, "Code"), xmlField(b, "Message")
	if code == "" {
		code = res.Status
	}
	if res.StatusCode == http.StatusNotFound || code == "NoSuchKey" || code == "NoSuchBucket" {
		return fmt.Errorf("%s: %s: %w", u.Redacted(), code, artifact.ErrNotFound)
	}
	if msg != "" {
		return fmt.Errorf("%s: %s: %s", u.Redacted(), code, msg)
	}
	return fmt.Errorf("%s: %s", u.Redacted(), code)
}

func xmlField(b []byte, name string) string {
	s := string(b)
	i := strings.Index(s, "<"+name+">")
	if i < 0 {
		return ""
	}
	s = s[i+len(name)+2:]
	j := strings.Index(s, "</"+name+">")
	if j < 0 {
		return ""
	}
	return strings.TrimSpace(s[:j])
}
