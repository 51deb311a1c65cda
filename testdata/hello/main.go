// Command hello is the end-to-end tests' workload: an HTTP server that
// answers with its host name, and, run as "hello lookup NAME", a DNS
// client that prints the addresses NAME resolves to (pure Go resolver,
// reading the pod's /etc/resolv.conf).
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "lookup" {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for {
			addrs, err := net.DefaultResolver.LookupHost(ctx, os.Args[2])
			if err == nil {
				fmt.Println(strings.Join(addrs, " "))
				return
			}
			if ctx.Err() != nil {
				fmt.Fprintln(os.Stderr, "lookup failed:", err)
				os.Exit(1)
			}
			time.Sleep(time.Second)
		}
	}
	host, _ := os.Hostname()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	addr := ":8080"
	if p := os.Getenv("PORT"); p != "" {
		addr = ":" + p
	}
	if err := http.ListenAndServe(addr, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
