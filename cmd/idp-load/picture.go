package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"strconv"
	"time"
)

// floodPictureSide makes the picture flood's image just under 5 MiB as a
// PNG: noise does not compress, so 1280² RGB pixels are 4.9 MB.
const floodPictureSide = 1280

// floodPicture is an opaque PNG of noise, just under the server's default
// 5 MiB upload limit, that decodes (to 6.5 MB) and is stored like any
// other picture.
func floodPicture() ([]byte, error) {
	img := image.NewNRGBA(image.Rect(0, 0, floodPictureSide, floodPictureSide))
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(img.Pix); i += 4 {
		v := rnd.Uint32()
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = byte(v), byte(v>>8), byte(v>>16), 0xff
	}
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&b, img); err != nil {
		return nil, err
	}
	if b.Len() > 5<<20 {
		return nil, fmt.Errorf("the flood's picture is %d bytes, over the 5 MiB limit", b.Len())
	}
	return b.Bytes(), nil
}

// pictureSignup sends one multipart signup with pic as its picture. The
// picture is streamed from the one shared copy, so that 200 workers do not
// hold 200 copies in the load generator. A 503 is the server's overload
// answer (outcome without failure, not ok); anything but 201 and 503 fails.
func (r *runner) pictureSignup(ctx context.Context, name, pw string, i int, pic []byte) outcome {
	var head, tail bytes.Buffer
	mw := multipart.NewWriter(&head)
	for k, v := range map[string]string{
		"client_id": r.cfg.Client, "username": name, "email": name + "@example.com", "password": pw,
		"first_name": "Load", "last_name": "Test " + strconv.Itoa(i), "gender": "unspecified",
	} {
		if err := mw.WriteField(k, v); err != nil {
			return outcome{failure: "body: " + err.Error()}
		}
	}
	if _, err := mw.CreateFormFile("picture", "noise.png"); err != nil {
		return outcome{failure: "body: " + err.Error()}
	}
	fmt.Fprintf(&tail, "\r\n--%s--\r\n", mw.Boundary())
	body := io.MultiReader(bytes.NewReader(head.Bytes()), bytes.NewReader(pic), bytes.NewReader(tail.Bytes()))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url("/v1/users"), body)
	if err != nil {
		return outcome{failure: "request: " + err.Error()}
	}
	req.ContentLength = int64(head.Len() + len(pic) + tail.Len())
	req.Header.Set("Content-Type", mw.FormDataContentType())
	c := http.Client{Transport: r.transport, Timeout: max(r.cfg.Timeout, 30*time.Second)}
	resp, err := c.Do(req)
	if err != nil {
		return outcome{failure: "transport"}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusCreated:
		return outcome{status: resp.StatusCode, ok: true}
	case http.StatusServiceUnavailable:
		return outcome{status: resp.StatusCode}
	default:
		return outcome{status: resp.StatusCode, failure: strconv.Itoa(resp.StatusCode)}
	}
}
