package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// healthcheckTimeout bounds one probe, connection and answer included.
const healthcheckTimeout = 2 * time.Second

// cmdHealthcheck probes the server's /healthz and succeeds only on 200: the
// container image has no curl, so its HEALTHCHECK runs `idp healthcheck`.
// Without --url it asks the server of this configuration on the loopback
// interface, at the port of IDP_HTTP_ADDR.
func cmdHealthcheck(ctx context.Context, args []string, e cmdEnv) error {
	var (
		rawURL  string
		timeout time.Duration
	)
	cfg, _, err := setup(command{
		name: "healthcheck", args: "[--url URL] [--timeout D] [flags]",
		what: "Exit 0 if the server's /healthz answers 200 in time (the container image's HEALTHCHECK).",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&rawURL, "url", "", "URL to probe (default http://127.0.0.1:<port of IDP_HTTP_ADDR>/healthz)")
			fs.DurationVar(&timeout, "timeout", healthcheckTimeout, "how long the probe may take")
		},
	}, args, e)
	if err != nil {
		return err
	}
	if rawURL == "" {
		if rawURL, err = healthzURL(cfg.HTTPAddr); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	client := &http.Client{
		// A redirect is not health: the probe wants /healthz itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", rawURL, res.Status)
	}
	fmt.Fprintf(e.stdout, "healthy: %s answered %s\n", rawURL, res.Status)
	return nil
}

// healthzURL is where the server listening on addr (IDP_HTTP_ADDR) answers
// /healthz from the same host: an address that listens on every interface
// (":8080", "0.0.0.0:8080", "[::]:8080") is probed on 127.0.0.1; a specific
// host is probed as it is.
func healthzURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return "", fmt.Errorf("healthcheck: IDP_HTTP_ADDR %q has no port; pass --url", addr)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	if port == "0" {
		return "", errors.New("healthcheck: IDP_HTTP_ADDR has port 0, chosen at random; pass --url")
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}
