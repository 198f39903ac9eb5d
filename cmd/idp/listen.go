package main

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"syscall"
)

// listen listens on addr. "localhost:port" means the loopback interface in
// both families, 127.0.0.1 and ::1, on one port (resolving the name would
// pick one of them, and a client that resolves it to the other could not
// connect); ::1 is skipped on a machine without IPv6.
func listen(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if host != "localhost" {
		return net.Listen("tcp", addr)
	}
	v4, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		return nil, err
	}
	// With port 0 the second listener takes the port the first was given.
	port = strconv.Itoa(v4.Addr().(*net.TCPAddr).Port)
	v6, err := net.Listen("tcp", net.JoinHostPort("::1", port))
	switch {
	case errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT):
		return v4, nil
	case err != nil:
		v4.Close()
		return nil, err
	}
	return newMultiListener(v4, v6), nil
}

// multiListener accepts the connections of several listeners as one, so
// that one http.Server serves them all.
type multiListener struct {
	lns   []net.Listener
	conns chan accepted
	done  chan struct{}
	close sync.Once
}

type accepted struct {
	conn net.Conn
	err  error
}

func newMultiListener(lns ...net.Listener) *multiListener {
	m := &multiListener{lns: lns, conns: make(chan accepted), done: make(chan struct{})}
	for _, ln := range lns {
		go m.accept(ln)
	}
	return m
}

func (m *multiListener) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		select {
		case m.conns <- accepted{c, err}:
		case <-m.done:
			if c != nil {
				c.Close()
			}
			return
		}
		// Only a closed listener ends the loop: the server retries other
		// errors (too many open files), and a loop that stopped on one
		// would leave this address unserved for good.
		if errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

func (m *multiListener) Accept() (net.Conn, error) {
	select {
	case a := <-m.conns:
		return a.conn, a.err
	case <-m.done:
		return nil, net.ErrClosed
	}
}

func (m *multiListener) Close() error {
	var errs []error
	m.close.Do(func() {
		close(m.done)
		for _, ln := range m.lns {
			errs = append(errs, ln.Close())
		}
	})
	return errors.Join(errs...)
}

// Addr is the first listener's address (127.0.0.1's).
func (m *multiListener) Addr() net.Addr { return m.lns[0].Addr() }
