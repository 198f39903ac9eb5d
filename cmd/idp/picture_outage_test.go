package main

import (
	"bytes"
	"net/http"
	"testing"

	"idp/fake"
)

// TestPictureStorageOutage: with picture storage unreachable, signup without
// a picture, login and profile reads keep working; picture operations answer
// 503 with Retry-After; nothing is left half done.
func TestPictureStorageOutage(t *testing.T) {
	gcs := fake.GCS(t)
	opts := gcsOptions(t, gcs)
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db", func(c *config) {
		c.PicturesURL = "gs://" + testBucket
		c.pictureOptions = opts
	})
	s.mobile()
	if r := s.signupMultipart(signupBody("pic", "pic@example.com"), testJPEG(t, 50, 50), "me.jpg"); r.status != 201 {
		t.Fatalf("signup with a picture before the outage: %d %s", r.status, r.body)
	}
	gcs.Stop() // storage gone

	r := s.signupJSON(signupBody("ada", "ada@example.com"))
	if r.status != 201 {
		t.Fatalf("signup without a picture during the outage: %d %s", r.status, r.body)
	}
	conf := mobileConfig(s, allUserScopes...)
	at, err := conf.PasswordCredentialsToken(t.Context(), "ada", testPassword)
	if err != nil {
		t.Fatalf("login during the outage: %v", err)
	}
	tok := at.AccessToken
	if r := s.get("/v1/profile", tok); r.status != 200 {
		t.Errorf("profile read during the outage: %d", r.status)
	}
	picTok, err := conf.PasswordCredentialsToken(t.Context(), "pic", testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.get("/v1/profile", picTok.AccessToken); r.status != 200 {
		t.Errorf("profile with a picture during the outage: %d %s", r.status, r.body)
	}
	body, ct := multipartBody(nil, testJPEG(t, 60, 60), "new.jpg")
	r = s.send(http.MethodPut, "/v1/profile/picture", tok, ct, body)
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Errorf("picture upload during the outage: %d %s", r.status, r.body)
	}
	problemOf(t, r)
	r = s.signupMultipart(signupBody("late", "late@example.com"), testJPEG(t, 50, 50), "me.jpg")
	if r.status != 503 {
		t.Errorf("signup with a picture during the outage: %d %s", r.status, r.body)
	}
	if taken, _ := s.app.accounts.Taken(t.Context(), "late", "late@example.com"); len(taken) != 0 {
		t.Error("a signup refused for its picture left a user behind")
	}
	if r := s.send(http.MethodPut, "/v1/profile/picture", tok, "image/jpeg", bytes.NewReader([]byte("not even an image"))); r.status != 415 {
		t.Errorf("a bad upload is still judged first: %d", r.status)
	}
}
