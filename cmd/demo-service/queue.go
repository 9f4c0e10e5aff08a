package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/graymesh/graymesh/lanequeue"
	"github.com/graymesh/graymesh/lanequeue/lanekafka"
)

// queueFlags are the demo's Kafka roles: publish an event per request
// served, or consume a topic as this environment's consumer.
type queueFlags struct {
	brokers, publish, consume, lanes string
}

func (q *queueFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&q.brokers, "kafka", "", "Kafka bootstrap servers, comma-separated (with --publish or --consume)")
	fs.StringVar(&q.publish, "publish", "", "Kafka topic to publish an event to for every request served, carrying its lane (lanekafka.Inject); created at start if missing, with the broker's default partitions")
	fs.StringVar(&q.consume, "consume", "", "Kafka topic to consume as this environment's consumer of the group named by --service (lanekafka); GET /consumed lists what it processed")
	fs.StringVar(&q.lanes, "lanes", "", "graymesh's lane state URL, e.g. http://127.0.0.1:18080/v1/lanes (with --consume)")
}

func (q *queueFlags) check() error {
	switch {
	case (q.publish != "" || q.consume != "") && q.brokers == "":
		return errors.New("--publish and --consume need --kafka")
	case q.consume != "" && q.lanes == "":
		return errors.New("--consume needs --lanes")
	}
	return nil
}

// startQueues starts the Kafka roles the flags ask for: the publisher
// it returns (nil without --publish) and the consumer, whose GET
// /consumed it adds to mux.
func startQueues(ctx context.Context, q queueFlags, o options, mux *http.ServeMux, log *slog.Logger) (*publisher, <-chan struct{}, error) {
	p, err := newPublisher(q)
	if err != nil {
		return nil, nil, err
	}
	if p != nil {
		go p.createTopic(ctx, log)
	}
	c, err := startConsumer(ctx, q, o, log)
	if err != nil {
		return nil, nil, err
	}
	if c == nil {
		none := make(chan struct{})
		close(none)
		return p, none, nil
	}
	mux.Handle("GET /consumed", c)
	return p, c.done, nil
}

// event is what the demo publishes: who served the request that produced it.
type event struct {
	Service string `json:"service"`
	Env     string `json:"env"`
	Path    string `json:"path"`
}

// publisher produces one event per request served.
type publisher struct {
	client *kgo.Client
	topic  string
}

func newPublisher(q queueFlags) (*publisher, error) {
	if q.publish == "" {
		return nil, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(q.brokers, ",")...))
	if err != nil {
		return nil, err
	}
	return &publisher{client: cl, topic: q.publish}, nil
}

// createTopic creates the topic if it is missing, with the broker's
// default partitions and replication (num.partitions,
// default.replication.factor), trying again every second until the broker
// answers: the service may start before it. Consumers join their group
// only once the topic exists.
func (p *publisher) createTopic(ctx context.Context, log *slog.Logger) {
	adm := kadm.NewClient(p.client)
	for {
		_, err := adm.CreateTopic(ctx, -1, -1, nil, p.topic)
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) || ctx.Err() != nil {
			return
		}
		log.Warn("creating the topic; trying again in a second", "topic", p.topic, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// publish sends the event of a request served under ctx, keyed by its
// trace id, with its lane and trace context.
func (p *publisher) publish(ctx context.Context, e event) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	r := &kgo.Record{Topic: p.topic, Key: []byte(trace.SpanContextFromContext(ctx).TraceID().String()), Value: body}
	lanekafka.Inject(ctx, r)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return p.client.ProduceSync(ctx, r).FirstErr()
}

// consumed is one record a consumer processed.
type consumed struct {
	Key    string `json:"key"`
	Lane   string `json:"lane"`
	Reason string `json:"reason"`
	Stress bool   `json:"stress,omitempty"`
}

// consumer consumes a topic for this environment and remembers what it
// processed.
type consumer struct {
	c *lanekafka.Consumer
	// done is closed once Run has returned: the consumer has committed
	// and left its group.
	done    chan struct{}
	mu      sync.Mutex
	records []consumed
}

func startConsumer(ctx context.Context, q queueFlags, o options, log *slog.Logger) (*consumer, error) {
	if q.consume == "" {
		return nil, nil
	}
	f, err := lanequeue.NewFollower(ctx, q.lanes)
	if err != nil {
		return nil, err
	}
	go f.Run(ctx, 0)
	out := &consumer{done: make(chan struct{})}
	opts := lanekafka.Options{
		Brokers: strings.Split(q.brokers, ","), Topic: q.consume, Group: o.service, Env: o.env, Follower: f, Service: o.service, Log: log,
		Handle: func(_ context.Context, r *kgo.Record, d lanequeue.Decision) error {
			out.mu.Lock()
			defer out.mu.Unlock()
			out.records = append(out.records, consumed{Key: string(r.Key), Lane: d.Env, Reason: d.Reason, Stress: d.Stress})
			return nil
		},
	}
	if o.env == lanequeue.Stable {
		opts.Envs = []string{"gray"}
	}
	if out.c, err = lanekafka.New(opts); err != nil {
		return nil, err
	}
	go func() {
		defer close(out.done)
		if err := out.c.Run(ctx); err != nil {
			log.Error("consumer", "error", err)
		}
	}()
	return out, nil
}

// ServeHTTP answers GET /consumed: the records processed, and (stable)
// whether gray's consumers are live as it last read.
func (c *consumer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	live, _ := c.c.Live("gray")
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"records": c.records, "gray_live": live})
}
