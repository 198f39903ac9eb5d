package fake

import (
	"context"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
)

// Bucket is the bucket GCS creates.
const Bucket = "idp-pictures"

// GCS runs fake-gcs-server in-process on loopback with Bucket, stopped when
// t ends.
func GCS(t testing.TB) *fakestorage.Server {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", PublicHost: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: Bucket})
	return srv
}

// GCSClient is the production storage client pointed at srv, closed when t
// ends.
func GCSClient(t testing.TB, srv *fakestorage.Server) *storage.Client {
	t.Helper()
	c, err := storage.NewClient(context.Background(),
		option.WithEndpoint(srv.URL()+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// GCSObjects counts the objects in srv's Bucket.
func GCSObjects(t testing.TB, srv *fakestorage.Server) int {
	t.Helper()
	it := srv.Client().Bucket(Bucket).Objects(context.Background(), nil)
	n := 0
	for {
		_, err := it.Next()
		if err == iterator.Done {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
}
