// Command hello is the end-to-end tests' workload: an HTTP server that
// answers with its host name, and, run as "hello lookup NAME", a DNS
// client that prints the addresses NAME resolves to (pure Go resolver,
// reading the pod's /etc/resolv.conf); "hello get URL" prints a page.
package main

import (
	"context"
	"fmt"
	"io"
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
			// Retried at the benchmarks' polling step: a refused query
			// (no DNS endpoint yet) fails at once, so a longer pause would
			// only delay the first answer the caller measures.
			fmt.Fprintln(os.Stderr, "lookup failed, retrying:", err)
			time.Sleep(100 * time.Millisecond)
		}
	}
	if len(os.Args) == 3 && os.Args[1] == "get" {
		os.Exit(get(os.Args[2]))
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

// get fetches url (retrying for a while) and prints the body.
func get(url string) int {
	client := &http.Client{Timeout: 3 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			fmt.Print(string(body))
			if resp.StatusCode == http.StatusOK {
				return 0
			}
			return 1
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "get failed:", err)
			return 1
		}
		time.Sleep(time.Second)
	}
}
