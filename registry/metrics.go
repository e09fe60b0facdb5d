package registry

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds Signet's Prometheus collectors. It is created once per
// server on a registry the caller owns (never the global default one).
type Metrics struct {
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	commitTime  prometheus.Histogram
	commitBatch prometheus.Histogram
	// caches reports the read caches; the server sets it once built.
	caches atomic.Pointer[func() []cacheStat]

	// series holds the request series already resolved, so a request
	// costs one map read instead of hashing its labels into each vector.
	// Its keys are bounded: route names, knownMethod and status codes.
	seriesMu sync.RWMutex
	series   map[seriesKey]requestSeries
}

type seriesKey struct {
	route, method string
	code          int
}

type requestSeries struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

// knownMethod maps a request method onto a bounded set: the method is
// the client's to choose, and every distinct label value is a series
// held for the life of the process.
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// cacheStat is one read cache's counters for /metrics.
type cacheStat struct {
	name         string
	hits, misses uint64
	entries      int
	bytes        int64
}

// cacheCollector exports the read caches: signet_cache_hits_total,
// signet_cache_misses_total, signet_cache_entries, signet_cache_bytes.
type cacheCollector struct{ m *Metrics }

var (
	cacheHitsDesc    = prometheus.NewDesc("signet_cache_hits_total", "Read cache hits.", []string{"cache"}, nil)
	cacheMissesDesc  = prometheus.NewDesc("signet_cache_misses_total", "Read cache misses.", []string{"cache"}, nil)
	cacheEntriesDesc = prometheus.NewDesc("signet_cache_entries", "Entries held by a read cache.", []string{"cache"}, nil)
	cacheBytesDesc   = prometheus.NewDesc("signet_cache_bytes", "Bytes (as accounted) held by a read cache.", []string{"cache"}, nil)
)

func (c cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cacheHitsDesc
	ch <- cacheMissesDesc
	ch <- cacheEntriesDesc
	ch <- cacheBytesDesc
}

func (c cacheCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.m.caches.Load()
	if f == nil {
		return
	}
	for _, s := range (*f)() {
		ch <- prometheus.MustNewConstMetric(cacheHitsDesc, prometheus.CounterValue, float64(s.hits), s.name)
		ch <- prometheus.MustNewConstMetric(cacheMissesDesc, prometheus.CounterValue, float64(s.misses), s.name)
		ch <- prometheus.MustNewConstMetric(cacheEntriesDesc, prometheus.GaugeValue, float64(s.entries), s.name)
		ch <- prometheus.MustNewConstMetric(cacheBytesDesc, prometheus.GaugeValue, float64(s.bytes), s.name)
	}
}

// NewMetrics registers the collectors on reg. count reports the number of
// stored signatures at scrape time.
func NewMetrics(reg prometheus.Registerer, count func(context.Context) (int64, error)) (*Metrics, error) {
	m := &Metrics{
		series: make(map[seriesKey]requestSeries),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signet", Name: "http_requests_total",
			Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "signet", Name: "http_request_duration_seconds",
			Help:    "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "signet", Name: "store_commit_duration_seconds",
			Help:    "Signature store commit latency, including fsync.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		commitBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "signet", Name: "store_commit_batch_size",
			Help:    "Writes sharing one signature store commit (group commit).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
	}
	stored := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "signet", Name: "signatures_stored",
		Help: "Signatures currently stored.",
	}, newStoredCount(count, time.Now).value)
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.commitTime, m.commitBatch, stored, cacheCollector{m}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// storedCount is signet_signatures_stored. /metrics needs no credentials,
// and counting is O(1) on bbolt but a count of every key on etcd: so
// counts never overlap (concurrent scrapes share one), and a count that
// took d is reused for countReuse times d, which keeps a replica's
// counting under a tenth of its time however often /metrics is asked.
type storedCount struct {
	count func(context.Context) (int64, error)
	now   func() time.Time

	mu    sync.Mutex
	n     int64
	until time.Time
}

const countReuse = 10

func newStoredCount(count func(context.Context) (int64, error), now func() time.Time) *storedCount {
	return &storedCount{count: count, now: now}
}

// value is the count, -1 when the store cannot say.
func (c *storedCount) value() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := c.now()
	if start.Before(c.until) {
		return float64(c.n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := c.count(ctx)
	end := c.now()
	// A failure is reused too, or a store that times out would be
	// asked again by every scrape.
	c.n, c.until = n, end.Add(countReuse*end.Sub(start))
	if err != nil {
		c.n = -1
	}
	return float64(c.n)
}

// ObserveCommit implements signaturestore.CommitObserver.
func (m *Metrics) ObserveCommit(d time.Duration, batchSize int) {
	m.commitTime.Observe(d.Seconds())
	m.commitBatch.Observe(float64(batchSize))
}

func (m *Metrics) observeRequest(route, method string, code int, d time.Duration) {
	k := seriesKey{route: route, method: knownMethod(method), code: code}
	m.seriesMu.RLock()
	s, ok := m.series[k]
	m.seriesMu.RUnlock()
	if !ok {
		s = requestSeries{
			count:   m.requests.WithLabelValues(k.route, k.method, strconv.Itoa(code)),
			latency: m.latency.WithLabelValues(route),
		}
		m.seriesMu.Lock()
		m.series[k] = s
		m.seriesMu.Unlock()
	}
	s.count.Inc()
	s.latency.Observe(d.Seconds())
}
