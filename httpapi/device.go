package httpapi

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/gray"
)

// check answers a device: read and validate its context, evaluate it
// against the snapshot, answer with an ETag; when the answer is the one
// the device has and it prefers to wait (Prefer: wait=N), hold the
// request until the answer changes (watch.go). It touches the store only to
// admit a device to an open capped window, through the Admissions in
// front of it. In the steady state it allocates nothing (see
// BenchmarkCheckHandler): the body, the device decoded from it and the
// answer's bytes are all reused.
func (s *Server) check(w http.ResponseWriter, r *http.Request) {
	st := checkStates.Get().(*checkState)
	defer st.release()
	dec, a, ok := s.evaluateCheck(w, r, st)
	if !ok {
		return
	}
	h := w.Header()
	h["Etag"] = a.etagHeader()
	// Devices may keep the answer but must revalidate it on every check.
	h["Cache-Control"] = cacheRevalidate
	// A check is a POST, yet the product contract answers an unchanged
	// result with 304, as GET would: the SDK sends If-None-Match with the
	// last ETag and skips parsing when nothing changed.
	if etagMatch(r.Header.Get("If-None-Match"), a.etag()) {
		if wait, ok := preferWait(r.Header.Get("Prefer")); ok {
			s.longPoll(w, r, st, dec.App.ID, a, wait)
			return
		}
		s.metrics.check("not_modified")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	s.writeAnswer(w, st, a)
}

// evaluateCheck reads, validates and evaluates the device context of a
// check (or a watch) into st, and returns its decision and answer; or it
// answers with a problem and returns false.
func (s *Server) evaluateCheck(w http.ResponseWriter, r *http.Request, st *checkState) (*delivery.Decision, *answer, bool) {
	now := requestTime(w)
	// The whole body must arrive within the body timeout; the server resets
	// the deadline for the next request on the connection.
	http.NewResponseController(w).SetReadDeadline(now.Add(s.bodyWait))
	dev := &st.dev
	if err := s.decodeCheck(w, r, st); err != nil {
		s.metrics.check(outcomeOf(err))
		s.writeProblem(w, r, err)
		return nil, nil, false
	}
	if err := dev.Validate(); err != nil {
		s.metrics.check("invalid")
		s.writeProblem(w, r, err)
		return nil, nil, false
	}
	snap := s.live.Current()
	if snap == nil {
		s.metrics.check("unavailable")
		w.Header().Set("Retry-After", "5")
		s.writeProblem(w, r, mds.Errorf(mds.EUNAVAILABLE, "starting up: no release snapshot loaded yet; retry shortly"))
		return nil, nil, false
	}
	if !s.realClock {
		now = s.now()
	}
	st.ip = clientIP(r, s.proxies)
	st.in = gray.NewInput(dev, st.ip, now)
	dec := &st.decision
	if err := snap.Evaluate(&st.in, s.admit, dec); err != nil {
		s.metrics.check(evaluationOutcome(err))
		s.writeProblem(w, r, evaluationProblem(err, dec, dev))
		return nil, nil, false
	}
	s.recent.Record(dec.App.ID, &st.in)
	return dec, s.answers.answer(dec, dev, now, &st.key), true
}

// evaluationOutcome is the check metric's outcome for a device the
// snapshot refused.
func evaluationOutcome(err error) string {
	if mds.ErrorCode(err) == mds.ENOTFOUND {
		return "unknown_app"
	}
	return "invalid"
}

// evaluationProblem is what a device the snapshot refused is told.
func evaluationProblem(err error, dec *delivery.Decision, dev *mds.Device) error {
	if mds.ErrorCode(err) == mds.EINVALID {
		return mds.Errorf(mds.EINVALID, "this app ships on %s, not on %s", mds.JoinPlatforms(dec.App.Platforms), dev.Platform)
	}
	return err
}

// writeAnswer sends answer a, whose ETag header is set, in full.
func (s *Server) writeAnswer(w http.ResponseWriter, st *checkState, a *answer) {
	s.metrics.check(a.outcome())
	h := w.Header()
	h["Content-Type"] = contentJSON
	h["Mds-Signature"] = a.signatureHeader()
	st.out = a.appendBody(st.out[:0])
	// net/http sets the Content-Length of a body written whole before the
	// handler returns, on a path cheaper than the header map's, as long
	// as the body fits its buffer before chunking (2 KiB in Go 1.26);
	// a longer one is given it here, so that no answer is chunked.
	if len(st.out) >= netHTTPBuffered {
		h["Content-Length"] = a.lengthHeader()
	}
	w.Write(st.out)
}

// netHTTPBuffered is net/http's bufferBeforeChunkingSize.
const netHTTPBuffered = 2048

var (
	cacheRevalidate = []string{"private, no-cache"}
	contentJSON     = []string{"application/json"}
)

// outcomeOf is the check metric's outcome for a body that was refused.
func outcomeOf(err error) string {
	if mds.ErrorCode(err) == mds.ETIMEOUT {
		return "timeout"
	}
	return "invalid"
}

// checkState is what one check needs, recycled from check to check: the
// body, the device decoded from it (whose strings point into the body),
// its targeting input, the decoder with the attribute map it lends, and
// the answer's body, assembled from its parts.
type checkState struct {
	body     []byte
	dev      mds.Device
	ip       netip.Addr
	in       gray.Input
	dec      deviceDecoder
	decision delivery.Decision
	key      []byte // what the answer's key may point into (answerSet.answer)
	out      []byte
}

var checkStates = sync.Pool{New: func() any {
	return &checkState{body: make([]byte, 0, 2048), dec: deviceDecoder{attrs: map[string]string{}, offline: map[string]string{}}, out: make([]byte, 0, 2048)}
}}

// release returns st to the pool, without what an oversized body grew.
func (st *checkState) release() {
	if cap(st.body) > 16<<10 {
		st.body = make([]byte, 0, 2048)
	}
	if cap(st.out) > 16<<10 {
		st.out = make([]byte, 0, 2048)
	}
	if len(st.dec.attrs) > mds.MaxAttributes {
		st.dec.attrs = map[string]string{}
	}
	if len(st.dec.offline) > mds.MaxOfflineHeld {
		st.dec.offline = map[string]string{}
	}
	st.dev, st.ip, st.in, st.dec.b = mds.Device{}, netip.Addr{}, gray.Input{}, nil
	st.decision.Reset()
	checkStates.Put(st)
}

// decodeCheck reads a check body of at most maxCheckBody bytes into st and
// decodes it: exactly one JSON object, nothing after it. Fields the server
// does not know are ignored, so newer SDKs can talk to older servers.
// Errors say what to fix and never echo the connection (addresses, ports).
func (s *Server) decodeCheck(w http.ResponseWriter, r *http.Request, st *checkState) error {
	b, err := readAll(r.Body, st.body[:0], maxCheckBody)
	st.body = b
	switch {
	case errors.Is(err, errTooLarge):
		// The rest of the body is not read: the connection cannot go on.
		w.Header().Set("Connection", "close")
		return mds.Errorf(mds.ETOOLARGE, "body is larger than %d bytes", maxCheckBody)
	case err != nil:
		if ne, ok := errors.AsType[net.Error](err); errors.Is(err, os.ErrDeadlineExceeded) || ok && ne.Timeout() {
			return mds.Errorf(mds.ETIMEOUT, "the check body did not arrive within %s; send it at once with the request", s.bodyWait)
		}
		return mds.Errorf(mds.EINVALID, "the body could not be read to its end; send the device context as one JSON object")
	}
	return st.dec.decode(b, &st.dev)
}

var errTooLarge = errors.New("body too large")

// readAll reads r to its end into buf, growing it, but to no more than
// limit bytes.
func readAll(r io.Reader, buf []byte, limit int) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), limit+1)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return buf, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// clientIP is the address a check came from: the peer, or, when the peer
// is a trusted proxy, the last address in X-Forwarded-For that is not one.
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if !isTrusted(ip, trusted) {
		return ip
	}
	hops := strings.Split(r.Header.Get("X-Forwarded-For"), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return ip // a garbled header: trust what we saw
		}
		if hop = hop.Unmap(); !isTrusted(hop, trusted) {
			return hop
		}
	}
	return ip
}

func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// etagMatch reports whether an If-None-Match header lists etag (weak
// comparison, as RFC 9110 prescribes for If-None-Match). "*" does not
// count: it asks whether any answer exists, which a check always has.
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for c := range strings.SplitSeq(header, ",") {
		c = strings.TrimSpace(c)
		if strings.TrimPrefix(c, "W/") == etag {
			return true
		}
	}
	return false
}

// blob serves the files a live task delivers, content-addressed; Range and
// If-Range make downloads resumable, and GET routes answer HEAD too.
//
// A digest always names the same bytes, but a file is served only while a
// live task delivers it: pausing or stopping the task withdraws it at once
// here. Devices and CDNs may keep a copy for up to the configured max-age
// and must then revalidate (must-revalidate; the ETag makes that a 304
// while the file is live, a 404 once withdrawn), so a withdrawal reaches
// caches within max-age; purge a CDN for an immediate one.
func (s *Server) blob(w http.ResponseWriter, r *http.Request) {
	sum := r.PathValue("sha256")
	if !mds.ValidSHA256(sum) {
		s.writeProblem(w, r, mds.Errorf(mds.EINVALID, "%q is not a sha256: expected 64 lowercase hex digits", sum))
		return
	}
	if s.live.Current() == nil {
		s.writeProblem(w, r, mds.Errorf(mds.EUNAVAILABLE, "starting up; retry shortly"))
		return
	}
	if !s.live.Serves(sum) {
		s.writeProblem(w, r, mds.Errorf(mds.ENOTFOUND, "no released package has sha256 %s", sum))
		return
	}
	f, b, err := s.blobs.Open(r.Context(), sum)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	defer f.Close()
	if !rangeServable(w, r, b.Size) {
		return
	}
	raw, _ := hex.DecodeString(sum)
	h := w.Header()
	h.Set("ETag", `"`+sum+`"`)
	h.Set("Cache-Control", fmt.Sprintf("public, max-age=%d, must-revalidate", int(s.blobMaxAge/time.Second)))
	h.Set("Content-Type", "application/octet-stream")
	// RFC 9530: lets a client verify the whole download independently.
	h.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(raw)+":")
	http.ServeContent(problemOnError(w, renderProblem), r, "", b.ModTime, f)
}

// manifest serves the itms-services install manifest of a live enterprise
// iOS package, at /client/v1/manifests/{app key}/{package id}.plist.
func (s *Server) manifest(w http.ResponseWriter, r *http.Request) {
	idText, ok := strings.CutSuffix(r.PathValue("file"), ".plist")
	id, err := parseID(idText)
	if !ok || err != nil {
		s.writeProblem(w, r, mds.Errorf(mds.ENOTFOUND, "manifests are named <package id>.plist"))
		return
	}
	snap := s.live.Current()
	if snap == nil {
		s.writeProblem(w, r, mds.Errorf(mds.EUNAVAILABLE, "starting up; retry shortly"))
		return
	}
	o, ok := snap.Enterprise(r.PathValue("appkey"), id)
	if !ok {
		s.writeProblem(w, r, mds.Errorf(mds.ENOTFOUND, "no live enterprise package %d", id))
		return
	}
	title := o.Spec.Title
	if title == "" {
		title = o.App.Name
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Cache-Control", "no-cache")
	writeManifest(w, s.links.packageURL(o.Spec), o.Spec.BundleID, o.Artifact.Version, title)
}

// parseID reads an ID from a path: decimal digits only, so "1x" is not 1.
func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, mds.Errorf(mds.ENOTFOUND, "%q is not an ID", s)
	}
	return id, nil
}
