package notify

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Outcome is what became of one delivery attempt or delivery.
type Outcome string

// The outcomes a Dispatcher counts.
const (
	// OutcomeSent: the endpoint accepted the delivery (2xx).
	OutcomeSent Outcome = "sent"
	// OutcomeRetried: an attempt failed and will be retried.
	OutcomeRetried Outcome = "retried"
	// OutcomeFailed: the delivery failed for good (a 4xx, or every
	// attempt failed).
	OutcomeFailed Outcome = "failed"
	// OutcomeDropped: the delivery was never sent: the queue was full, or
	// the dispatcher closed before it could be.
	OutcomeDropped Outcome = "dropped"
)

// Metrics counts deliveries by notifier type and outcome. Count is called
// from the dispatcher's worker and from Send's callers, concurrently, and
// must not block.
type Metrics interface {
	Count(typ string, outcome Outcome)
}

type nopMetrics struct{}

func (nopMetrics) Count(string, Outcome) {}

// PrometheusMetrics counts deliveries in the counter
// ferry_notifications_total{type, outcome}.
type PrometheusMetrics struct {
	total *prometheus.CounterVec
}

var _ Metrics = (*PrometheusMetrics)(nil)

// NewPrometheusMetrics creates the counter and registers it with reg.
func NewPrometheusMetrics(reg prometheus.Registerer) (*PrometheusMetrics, error) {
	m := &PrometheusMetrics{total: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_notifications_total",
		Help: "Notification deliveries by notifier type and outcome (sent, retried, failed, dropped).",
	}, []string{"type", "outcome"})}
	if err := reg.Register(m.total); err != nil {
		return nil, err
	}
	return m, nil
}

// Count implements Metrics.
func (m *PrometheusMetrics) Count(typ string, outcome Outcome) {
	m.total.WithLabelValues(typ, string(outcome)).Inc()
}
