// Package s3 registers the s3:// artifact store: any S3-compatible object
// store (AWS S3, MinIO, versitygw, Ceph RGW, …), through minio-go. Link it
// in with a blank import; URLs are s3://bucket/key, and the endpoint and
// credentials come from artifact.S3Options.
package s3

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/ferryci/ferry/internal/artifact"
)

func init() { artifact.Register(newStore, "s3") }

type store struct{ c *minio.Client }

var _ artifact.Store = store{}

func newStore(o artifact.Options) (artifact.Store, error) {
	o3 := o.S3
	if o3.Endpoint == "" {
		o3.Endpoint = "s3.amazonaws.com"
	}
	if o3.Region == "" {
		o3.Region = "us-east-1"
	}
	var creds *credentials.Credentials
	if o3.AccessKey != "" || o3.SecretKey != "" {
		creds = credentials.NewStaticV4(o3.AccessKey, o3.SecretKey, "")
	} else {
		creds = credentials.NewStatic("", "", "", credentials.SignatureAnonymous)
	}
	opts := &minio.Options{Creds: creds, Secure: !o3.Insecure, Region: o3.Region, BucketLookup: minio.BucketLookupPath}
	if o.HTTP != nil {
		opts.Transport = o.HTTP.Transport
	}
	c, err := minio.New(o3.Endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint %q: %w", o3.Endpoint, err)
	}
	return store{c: c}, nil
}

func split(u *url.URL) (bucket, key string, err error) {
	key = strings.TrimPrefix(u.Path, "/")
	if u.Host == "" || key == "" {
		return "", "", fmt.Errorf("s3 url %q: want s3://bucket/key", u.Redacted())
	}
	return u.Host, key, nil
}

func (s store) Open(ctx context.Context, u *url.URL, offset int64) (io.ReadCloser, error) {
	bucket, key, err := split(u)
	if err != nil {
		return nil, err
	}
	opts := minio.GetObjectOptions{}
	if offset > 0 {
		if err := opts.SetRange(offset, 0); err != nil {
			return nil, err
		}
	}
	// GetObject is lazy; Stat makes the request so a missing object or a
	// refused signature is reported here rather than on the first Read.
	obj, err := s.c.GetObject(ctx, bucket, key, opts)
	if err != nil {
		return nil, classify(u, err)
	}
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		return nil, classify(u, err)
	}
	return obj, nil
}

func (s store) Put(ctx context.Context, u *url.URL, r io.Reader, size int64) error {
	bucket, key, err := split(u)
	if err != nil {
		return err
	}
	_, err = s.c.PutObject(ctx, bucket, key, r, size, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return classify(u, err)
	}
	return nil
}

func classify(u *url.URL, err error) error {
	if er := minio.ToErrorResponse(err); er.Code == "NoSuchKey" || er.Code == "NoSuchBucket" || er.StatusCode == 404 {
		return fmt.Errorf("%s: %s: %w", u.Redacted(), er.Message, artifact.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", u.Redacted(), err)
}
