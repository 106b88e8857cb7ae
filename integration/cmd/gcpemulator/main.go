// Command gcpemulator serves the gcpsmtest Secret Manager emulator on a
// loopback port, for tests whose processes must share one emulator (and
// outlive any one of them, as in the SIGKILL tests), and for trying the
// gcpsm adapter by hand:
//
//	go run ./cmd/gcpemulator                 # prints 127.0.0.1:PORT, serves until Ctrl-C
//	go run ./cmd/gcpemulator -addr-file f    # also writes the address to f
//
// Clients connect with gcpsmtest.ClientOptionsFor(addr) (plaintext gRPC,
// no credentials). The emulator keeps its data in memory: it is gone when
// the command stops, on SIGINT or SIGTERM, or when its standard input is
// closed (-stdin, as a parent test process that dies closes it).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
)

func main() {
	addrFile := flag.String("addr-file", "", "write the listening address to this file (atomically)")
	watchStdin := flag.Bool("stdin", false, "stop when standard input is closed")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("gcpemulator: ")

	srv, err := gcpsmtest.New()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	if *addrFile != "" {
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(srv.Addr()), 0o600); err != nil {
			log.Fatal(err)
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(srv.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}
	<-ctx.Done()
}
