package main

import (
	"context"
	"net"
	"testing"
)

func TestCheckLoopback(t *testing.T) {
	for _, ok := range []string{"https://127.0.0.1:8443", "https://localhost:8443", "https://[::1]:8443", "http://127.0.0.1:8080/", "https://LOCALHOST:1"} {
		if _, err := checkLoopback(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"https://10.0.0.1:8443", "https://example.com", "https://127.0.0.2:8443", "https://0.0.0.0:8443",
		"https://localhost.example.com", "https://user@127.0.0.1:8443", "ftp://127.0.0.1", "127.0.0.1:8443",
		"https://127.0.0.1:8443/api", "https://[::ffff:10.0.0.1]:8443"} {
		if _, err := checkLoopback(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestLoopbackDialerRefusesOtherPeers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	c, err := loopbackDialer()(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("loopback dial refused: %v", err)
	}
	c.Close()
}
