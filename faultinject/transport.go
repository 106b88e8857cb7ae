package faultinject

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Protocol says how a server of the faulted client answers errors, so
// that ServerError and Throttle look like the real thing.
type Protocol int

const (
	// AWSJSON is the AWS JSON 1.1 protocol of Secrets Manager: errors
	// carry their code in the X-Amzn-ErrorType header and the "__type"
	// field of a JSON body.
	AWSJSON Protocol = iota + 1
	// Vault is the Vault HTTP API: errors are {"errors":[...]} bodies;
	// a rate-limit quota answers HTTP 429.
	Vault
)

// Transport is an http.RoundTripper that injects the faults its Injector
// decides into the requests that Match selects.
//
//	inj := faultinject.New(faultinject.Config{Seed: 1, P: faultinject.DefaultP})
//	httpClient := &http.Client{Transport: &faultinject.Transport{Injector: inj, Protocol: faultinject.AWSJSON}}
type Transport struct {
	// Base sends the requests (default http.DefaultTransport).
	Base http.RoundTripper
	// Injector decides the faults; required.
	Injector *Injector
	// Protocol shapes the ServerError and Throttle answers; required
	// when the Injector may decide either.
	Protocol Protocol
	// Match selects the requests that may get a fault (default: all).
	// Requests it rejects go through untouched and are not counted.
	Match func(*http.Request) bool
}

var requestIDs atomic.Int64

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if t.Match != nil && !t.Match(req) {
		return base.RoundTrip(req)
	}
	kind, delay := t.Injector.Decide()
	switch kind {
	case Drop:
		closeBody(req)
		return nil, &Error{Kind: Drop, Err: &net.OpError{Op: "dial", Net: "tcp", Addr: hostAddr(req), Err: syscall.ECONNREFUSED}}
	case LoseResponse:
		resp, err := base.RoundTrip(req)
		if err != nil {
			return nil, err // a real failure: nothing to lose
		}
		// Read the whole answer: the server has finished with the request.
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return nil, &Error{Kind: LoseResponse, Err: &net.OpError{Op: "read", Net: "tcp", Addr: hostAddr(req), Err: syscall.ECONNRESET}}
	case ServerError, Throttle:
		closeBody(req)
		return t.answer(req, kind)
	case Delay:
		timer := time.NewTimer(delay)
		defer timer.Stop()
		select {
		case <-req.Context().Done():
			closeBody(req)
			return nil, context.Cause(req.Context())
		case <-timer.C:
		}
	}
	return base.RoundTrip(req)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

type hostOnly string

func (h hostOnly) Network() string { return "tcp" }
func (h hostOnly) String() string  { return string(h) }

func hostAddr(req *http.Request) net.Addr { return hostOnly(req.URL.Host) }

// answer builds the error answer of the protocol for a ServerError or
// Throttle fault, as the real server would send it.
func (t *Transport) answer(req *http.Request, kind Kind) (*http.Response, error) {
	h := http.Header{}
	var status int
	var body string
	switch t.Protocol {
	case AWSJSON:
		code, msg := "InternalServiceError", "faultinject: injected server error"
		status = http.StatusInternalServerError
		if kind == Throttle {
			code, msg = "ThrottlingException", "Rate exceeded"
			status = http.StatusBadRequest
		}
		h.Set("Content-Type", "application/x-amz-json-1.1")
		h.Set("X-Amzn-ErrorType", code)
		h.Set("X-Amzn-Requestid", fmt.Sprintf("faultinject-%d", requestIDs.Add(1)))
		body = fmt.Sprintf(`{"__type":%q,"message":%q}`, code, msg)
	case Vault:
		status = http.StatusInternalServerError
		msg := "faultinject: injected server error"
		if kind == Throttle {
			status = http.StatusTooManyRequests
			msg = "request path " + strconv.Quote(strings.TrimPrefix(req.URL.Path, "/v1/")) + ": rate limit quota exceeded"
			h.Set("Retry-After", "0")
		}
		h.Set("Content-Type", "application/json")
		body = fmt.Sprintf(`{"errors":[%q]}`, msg)
	default:
		return nil, fmt.Errorf("faultinject: a %v fault needs Transport.Protocol", kind)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader([]byte(body))),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}

// AWSOperation returns a Transport.Match that selects the requests of
// the given AWS JSON-protocol operations ("CreateSecret",
// "PutSecretValue", ...), named by their X-Amz-Target header.
func AWSOperation(ops ...string) func(*http.Request) bool {
	return func(req *http.Request) bool {
		target := req.Header.Get("X-Amz-Target")
		_, op, _ := strings.Cut(target, ".")
		for _, o := range ops {
			if op == o {
				return true
			}
		}
		return false
	}
}
