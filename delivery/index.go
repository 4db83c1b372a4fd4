package delivery

import (
	"hash/maphash"
	"iter"
	"maps"
)

// index is a map that successive snapshots share. It is split into shards
// by key hash, and a snapshot built from another copies only the shards
// its changes touch: a write to one app copies a few dozen entries, not an
// entry per app. A lookup costs one hash more than a plain map's.
type index[K comparable, V any] struct {
	shards [indexShards]map[K]V
}

const indexShards = 64

var indexSeed = maphash.MakeSeed()

func shardOf[K comparable](k K) int { return int(maphash.Comparable(indexSeed, k) % indexShards) }

func (x *index[K, V]) get(k K) (V, bool) {
	v, ok := x.shards[shardOf(k)][k]
	return v, ok
}

// all yields every entry, in no particular order.
func (x *index[K, V]) all() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for _, m := range x.shards {
			for k, v := range m {
				if !yield(k, v) {
					return
				}
			}
		}
	}
}

// indexEditor changes an index that may share shards with others: it
// copies a shard the first time it writes to it, and writes the copy.
type indexEditor[K comparable, V any] struct {
	x     *index[K, V]
	owned [indexShards]bool
}

func (e *indexEditor[K, V]) shard(k K) map[K]V {
	i := shardOf(k)
	if !e.owned[i] {
		m := maps.Clone(e.x.shards[i])
		if m == nil {
			m = map[K]V{}
		}
		e.x.shards[i], e.owned[i] = m, true
	}
	return e.x.shards[i]
}

func (e *indexEditor[K, V]) set(k K, v V) { e.shard(k)[k] = v }

func (e *indexEditor[K, V]) delete(k K) { delete(e.shard(k), k) }
