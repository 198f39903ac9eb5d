package picture_test

import (
	"context"
	"errors"
	"log"
	"net/http"
	"os"

	"idp/picture"
)

// The flow of an upload in an HTTP handler: process, name, store, link; and
// the status code for each failure.
func Example() {
	ctx := context.Background()
	store, err := picture.Open(ctx, "file:///var/lib/idp/pictures", "http://localhost:8080")
	if err != nil {
		log.Fatal(err)
	}
	// The directory store serves its own files; a GCS store hands out
	// signed URLs instead.
	mux := http.NewServeMux()
	if d, ok := store.(*picture.DirStore); ok {
		mux.Handle(picture.PathPrefix, d.Handler())
	}

	upload, _ := os.Open("avatar.jpg") // the request body or multipart part
	img, err := picture.Process(upload, picture.Limits{})
	if err != nil {
		switch {
		case errors.Is(err, picture.ErrTooLarge):
			// 413
		case errors.Is(err, picture.ErrNotImage):
			// 415
		case errors.Is(err, picture.ErrDimensions):
			// 422, with an error on the field "picture"
		default:
			// 400: the upload could not be read
		}
		return
	}
	key := picture.NewKey(img.ContentType) // fresh for every upload
	if err := store.Put(ctx, key, img); err != nil {
		// errors.Is(err, picture.ErrUnavailable): 503; nothing was stored
		return
	}
	// Save key with the user (and delete the object if that fails, or the
	// object it replaced if it succeeds); on every profile read:
	pictureURL, err := store.URL(ctx, key)
	_, _ = pictureURL, err
}
