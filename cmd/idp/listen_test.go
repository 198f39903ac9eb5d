package main

import (
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails its first Accept as a process out of file
// descriptors does, then accepts from the real listener.
type flakyListener struct {
	net.Listener
	failed bool
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if !l.failed {
		l.failed = true
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestMultiListenerSurvivesAcceptErrors: an accept error that the server
// retries (EMFILE) is handed on, and the listener still accepts after it;
// once closed, Accept says so.
func TestMultiListenerSurvivesAcceptErrors(t *testing.T) {
	v4, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newMultiListener(&flakyListener{Listener: v4})
	defer m.Close()
	accept := func() (net.Conn, error) {
		t.Helper()
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() { c, err := m.Accept(); ch <- result{c, err} }()
		select {
		case r := <-ch:
			return r.c, r.err
		case <-time.After(5 * time.Second):
			t.Fatal("Accept did not return in 5 s")
			return nil, nil
		}
	}
	if _, err := accept(); err == nil {
		t.Fatal("the failed accept was not handed on")
	}
	client, err := net.Dial("tcp", v4.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := accept()
	if err != nil {
		t.Fatalf("after a failed accept: %v, want the connection", err)
	}
	c.Close()
	m.Close()
	if _, err := m.Accept(); err != net.ErrClosed {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
}
