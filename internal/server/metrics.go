package server

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferryci/ferry/internal/store"
)

// metrics are the server's Prometheus metrics. The gauges are read from
// the store at scrape time, so every server of a cluster reports the same
// queue; the counters and histograms count what this server saw.
type metrics struct {
	reg           *prometheus.Registry
	queueWait     prometheus.Histogram
	buildDuration *prometheus.HistogramVec
	jobsTotal     *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		reg: prometheus.NewRegistry(),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ferry_queue_wait_seconds",
			Help:    "Time jobs waited in the queue before an agent leased them.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}),
		buildDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ferry_build_duration_seconds",
			Help:    "Time from a build's creation to its end, by final status.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200},
		}, []string{"status"}),
		jobsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_jobs_total",
			Help: "Jobs that finished, by final status.",
		}, []string{"status"}),
	}
}

// register registers every metric, with gauges that read s's store.
func (m *metrics) register(s *Server) {
	m.reg.MustRegister(m.queueWait, m.buildDuration, m.jobsTotal, &queueCollector{s: s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// handler serves the metrics in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// buildFinished observes a finished build's duration, from its creation
// to its end.
func (m *metrics) buildFinished(status store.Status, created, finished time.Time) {
	if finished.IsZero() {
		finished = time.Now()
	}
	if created.IsZero() {
		created = finished
	}
	m.buildDuration.WithLabelValues(string(status)).Observe(finished.Sub(created).Seconds())
}

// jobFinished counts a finished job.
func (m *metrics) jobFinished(status store.Status) {
	m.jobsTotal.WithLabelValues(string(status)).Inc()
}

var (
	descPending = prometheus.NewDesc("ferry_jobs_pending", "Jobs waiting for an agent.", nil, nil)
	descRunning = prometheus.NewDesc("ferry_jobs_running", "Jobs leased by an agent.", nil, nil)
	descBlocked = prometheus.NewDesc("ferry_jobs_blocked", "Jobs waiting for an approval or another pipeline.", nil, nil)
	descOldest  = prometheus.NewDesc("ferry_jobs_oldest_pending_seconds", "How long the longest-waiting pending job has waited.", nil, nil)
	descAgents  = prometheus.NewDesc("ferry_agents_connected", "Agents seen in the last 30 seconds.", nil, nil)
)

// queueCollector reads the queue's gauges from the store at scrape time.
type queueCollector struct{ s *Server }

// scrapeTimeout bounds the store queries of one scrape.
const scrapeTimeout = 5 * time.Second

// Describe implements prometheus.Collector.
func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPending, descRunning, descBlocked, descOldest, descAgents} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	now := time.Now()
	if st, err := c.s.store.Jobs.Stats(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(descPending, err)
	} else {
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(st.Pending))
		ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, float64(st.Running))
		ch <- prometheus.MustNewConstMetric(descBlocked, prometheus.GaugeValue, float64(st.Blocked))
		oldest := 0.0
		if !st.OldestPending.IsZero() {
			oldest = now.Sub(st.OldestPending).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, oldest)
	}
	agents, err := c.s.store.Agents.List(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descAgents, err)
		return
	}
	n := 0
	for _, a := range agents {
		if now.Sub(a.LastSeen) < connectedWindow {
			n++
		}
	}
	ch <- prometheus.MustNewConstMetric(descAgents, prometheus.GaugeValue, float64(n))
}
