package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/config"
	"github.com/mds-dev/mds/delivery"
)

// Remote configuration over HTTP. A device's configuration is a document
// per namespace: the namespace's current version overlaid by the changes
// in force for the device. An index names each namespace's document by
// its version, its changes, its SHA-256, size and URL; the check answer
// names the index by its SHA-256, size and URL, in a few hundred bytes
// however many namespaces the app has. The signature covers the index's
// digest, which covers the documents', so whatever a device fetches is as
// trusted as the answer. A device fetches the index when its digest moved,
// then the namespaces whose digest moved; an unchanged configuration leaves
// the answer, its ETag and what watchers hold unchanged.
//
// Indexes and documents are a function of the app's part of the snapshot
// and a set of changes, which their URLs name, so any node can serve any
// of them its snapshot agrees with, and every node serves the same bytes.

// configSection is the config section of an answer: where the index is.
type configSection struct {
	SHA256 string `json:"sha256"`
	Size   int    `json:"size"`
	URL    string `json:"url"`
}

// configIndex is the index of a set of changes, and the section that
// names it.
type configIndex struct {
	section *section
	body    []byte
	sha256  string
}

// configEntry is one namespace of the config section.
type configEntry struct {
	Version int64   `json:"version"`
	Gray    []int64 `json:"gray"`
	SHA256  string  `json:"sha256"`
	Size    int     `json:"size"`
	URL     string  `json:"url"`
}

// configDoc is a namespace's document for one set of changes.
type configDoc struct {
	body   []byte
	sha256 string
}

// docKey names a document: its namespace (by index) and the changes of
// that namespace in force.
type docKey struct {
	ns  int
	set uint64
}

// configMemo is what the transport keeps of an app's configuration, on
// delivery.Config.Memo: the indexes by set of changes admitted, and the
// documents by namespace and changes. Checks and fetches read both
// without a lock, so the maps are replaced, never written; writers take
// mu. Both are bounded: past maxAppAnswers they start over. What a fetch
// builds is kept only when it is what the URL named: URLs nobody was
// given cannot fill the memo.
type configMemo struct {
	links   *links
	indexes atomic.Pointer[map[uint64]*configIndex]
	docs    atomic.Pointer[map[docKey]*configDoc]
	mu      sync.Mutex
}

func (set *answerSet) configMemo(c *delivery.Config) *configMemo {
	cur := c.Memo.Load()
	m, _ := cur.(*configMemo)
	if m == nil || m.links != set.links {
		next := &configMemo{links: set.links}
		next.indexes.Store(&map[uint64]*configIndex{})
		next.docs.Store(&map[docKey]*configDoc{})
		if !c.Memo.CompareAndSwap(cur, next) {
			// Another check won; its memo is as good, unless it is of
			// another public URL, which only tests do.
			if won, _ := c.Memo.Load().(*configMemo); won != nil && won.links == set.links {
				return won
			}
		}
		m = next
	}
	return m
}

// config returns the config section of choice ch: null for an app without
// configuration.
func (set *answerSet) config(ch delivery.ConfigChoice) *section {
	if ch.Config == nil {
		return nullSection
	}
	m := set.configMemo(ch.Config)
	if x := (*m.indexes.Load())[ch.Admitted]; x != nil {
		return x.section
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	x, docs := m.build(ch.Config, ch.Admitted)
	m.keep(ch.Admitted, x, docs)
	return x.section
}

// build makes the index of the changes of set, with the documents it
// names that m does not hold yet, keeping nothing; m.mu is held.
func (m *configMemo) build(c *delivery.Config, set uint64) (*configIndex, map[docKey]*configDoc) {
	if x := (*m.indexes.Load())[set]; x != nil {
		return x, nil
	}
	fresh := map[docKey]*configDoc{}
	entries := make(map[string]*configEntry, len(c.Namespaces))
	for i := range c.Namespaces {
		n := &c.Namespaces[i]
		k := docKey{ns: i, set: set & n.Changes}
		doc := (*m.docs.Load())[k]
		if doc == nil {
			doc = buildDoc(c, k)
			fresh[k] = doc
		}
		e := &configEntry{Version: n.Number(), Gray: []int64{}, SHA256: doc.sha256, Size: len(doc.body)}
		for _, ch := range c.Of(n, set) {
			e.Gray = append(e.Gray, ch.Task.ID)
		}
		e.URL = m.links.configDoc(c.App.Key, n.Name, e.Version, e.Gray, doc.sha256)
		entries[n.Name] = e
	}
	body, err := json.Marshal(struct {
		Namespaces map[string]*configEntry `json:"namespaces"`
	}{entries}) // maps encode with their keys sorted
	if err != nil {
		panic(err) // strings and numbers always encode
	}
	body = append(body, '\n')
	sum := sha256.Sum256(body)
	x := &configIndex{body: body, sha256: hex.EncodeToString(sum[:])}
	var gray []int64
	for _, ch := range c.In(set) {
		gray = append(gray, ch.Task.ID)
	}
	x.section = newSection(&configSection{SHA256: x.sha256, Size: len(body), URL: m.links.configIndex(c.App.Key, gray, x.sha256)})
	return x, fresh
}

// keep keeps index x of set (none for nil) and the documents docs; m.mu
// is held.
func (m *configMemo) keep(set uint64, x *configIndex, docs map[docKey]*configDoc) {
	if len(docs) > 0 {
		old := *m.docs.Load()
		next := map[docKey]*configDoc{}
		if len(old)+len(docs) <= maxAppAnswers {
			next = maps.Clone(old)
		}
		maps.Copy(next, docs)
		m.docs.Store(&next)
	}
	old := *m.indexes.Load()
	if x == nil || old[set] == x {
		return
	}
	next := map[uint64]*configIndex{}
	if len(old) < maxAppAnswers {
		next = maps.Clone(old)
	}
	next[set] = x
	m.indexes.Store(&next)
}

// buildDoc makes the document k names.
func buildDoc(c *delivery.Config, k docKey) *configDoc {
	n := &c.Namespaces[k.ns]
	values, _ := effective(c, n, k.set)
	body := configDocument(n, c.Of(n, k.set), values)
	sum := sha256.Sum256(body)
	return &configDoc{body: body, sha256: hex.EncodeToString(sum[:])}
}

// effective is what a device sees of namespace n under the changes of
// set: its values, and for each key a change decided, which.
func effective(c *delivery.Config, n *delivery.ConfigNamespace, set uint64) (config.Values, map[string]config.Source) {
	var base config.Values
	if n.Version != nil {
		base = make(config.Values, len(n.Version.Keys))
		for k, v := range n.Version.Keys {
			base[k] = v.Value
		}
	}
	var layers []config.Layer
	for _, ch := range c.Of(n, set) {
		l := config.Layer{Task: ch.Task.ID, Change: config.Change{Set: config.Values{}, Delete: ch.Spec.Delete}}
		for k, v := range ch.Spec.Set {
			l.Change.Set[k] = v.Value
		}
		layers = append(layers, l)
	}
	return config.Effective(base, layers)
}

// configDocument is a namespace's document: its name, version, the
// changes in force, and the values, keys sorted. Values are canonical
// JSON already (mds.CheckConfigValue), so equal configurations are equal
// bytes on every node.
func configDocument(n *delivery.ConfigNamespace, changes []*delivery.ConfigChange, values config.Values) []byte {
	name, _ := json.Marshal(n.Name)
	b := append([]byte(`{"namespace":`), name...)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, n.Number(), 10)
	b = append(b, `,"gray":[`...)
	for i, c := range changes {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, c.Task.ID, 10)
	}
	b = append(b, `],"values":{`...)
	for i, k := range slices.Sorted(maps.Keys(values)) {
		if i > 0 {
			b = append(b, ',')
		}
		key, _ := json.Marshal(k)
		b = append(append(append(b, key...), ':'), values[k]...)
	}
	return append(b, "}}\n"...)
}

// configDoc is where a namespace's document under a set of changes is
// fetched, and configIndex where the index of a set is.
func (l *links) configDoc(appKey, ns string, version int64, gray []int64, sum string) string {
	return l.base + "/client/v1/config/" + sum + "?app=" + appKey + "&ns=" + ns + "&version=" + strconv.FormatInt(version, 10) + "&gray=" + idList(gray)
}

func (l *links) configIndex(appKey string, gray []int64, sum string) string {
	return l.base + "/client/v1/config/" + sum + "?app=" + appKey + "&gray=" + idList(gray)
}

// idList is ids, comma-separated.
func idList(ids []int64) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	return b.String()
}

// serveConfig serves GET /client/v1/config/{sha256}: with
// ?app=&gray= the index of a set of changes, with ?app=&ns=&version=&gray=
// a namespace's document, when this node's snapshot makes it with that
// digest. A configuration that moved on is 404: check again.
func (s *Server) serveConfig(w http.ResponseWriter, r *http.Request) {
	sum := r.PathValue("sha256")
	if !mds.ValidSHA256(sum) {
		s.writeProblem(w, r, mds.Errorf(mds.EINVALID, "%q is not a sha256: expected 64 lowercase hex digits", sum))
		return
	}
	snap := s.live.Current()
	if snap == nil {
		s.writeProblem(w, r, mds.Errorf(mds.EUNAVAILABLE, "starting up; retry shortly"))
		return
	}
	q := r.URL.Query()
	gone := mds.Errorf(mds.ENOTFOUND, "this configuration is no longer served: check again for the current one")
	c := snap.Config(q.Get("app"))
	if c == nil {
		s.writeProblem(w, r, gone)
		return
	}
	var set uint64
	if g := q.Get("gray"); g != "" {
		for id := range strings.SplitSeq(g, ",") {
			task, err := strconv.ParseInt(id, 10, 64)
			j := slices.IndexFunc(c.Changes, func(ch *delivery.ConfigChange) bool { return ch.Task.ID == task })
			if err != nil || j < 0 {
				s.writeProblem(w, r, gone)
				return
			}
			set |= 1 << j
		}
	}
	m := s.answers.configMemo(c)
	var body []byte
	if !q.Has("ns") {
		x := (*m.indexes.Load())[set]
		if x == nil {
			m.mu.Lock()
			var docs map[docKey]*configDoc
			if x, docs = m.build(c, set); x.sha256 == sum {
				m.keep(set, x, docs)
			}
			m.mu.Unlock()
		}
		if x.sha256 == sum {
			body = x.body
		}
	} else if i := slices.IndexFunc(c.Namespaces, func(n delivery.ConfigNamespace) bool { return n.Name == q.Get("ns") }); i >= 0 &&
		set&^c.Namespaces[i].Changes == 0 && q.Get("version") == strconv.FormatInt(c.Namespaces[i].Number(), 10) {
		k := docKey{ns: i, set: set}
		d := (*m.docs.Load())[k]
		if d == nil {
			if d = buildDoc(c, k); d.sha256 == sum {
				m.mu.Lock()
				m.keep(set, nil, map[docKey]*configDoc{k: d})
				m.mu.Unlock()
			}
		}
		if d.sha256 == sum {
			body = d.body
		}
	}
	if body == nil {
		s.writeProblem(w, r, gone)
		return
	}
	h := w.Header()
	h.Set("ETag", `"`+sum+`"`)
	// The URL names the content: it never changes.
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("Content-Type", "application/json")
	if etagMatch(r.Header.Get("If-None-Match"), `"`+sum+`"`) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}
