package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// laneHeader is the record header a lane travels in through Kafka.
const laneHeader = "x-graymesh-lane"

// A real broker keeps each record's headers through produce, storage and a
// consumer group's fetch: what lane propagation through Kafka relies on.
func TestKafkaBrokerCarriesRecordHeaders(t *testing.T) {
	const topic, records = "orders", 10
	b := startKafka(t)
	b.createTopic(t, topic, 2)

	produceLaneRecords(t, b.Bootstrap, topic, records)
	got := consumeLaneRecords(t, b.Bootstrap, topic, records)

	partitions := map[int32]bool{}
	for i := range records {
		value := fmt.Sprintf("order-%d", i)
		r, ok := got[value]
		if !ok {
			t.Errorf("record %s never arrived", value)
			continue
		}
		partitions[r.Partition] = true
		want := []kgo.RecordHeader{{Key: laneHeader, Value: []byte(fmt.Sprintf("lane-%d", i))}}
		if !sameHeaders(r.Headers, want) {
			t.Errorf("record %s arrived with headers %s, want %s", value, showHeaders(r.Headers), showHeaders(want))
		}
	}
	if len(partitions) != 2 {
		t.Errorf("records came from partitions %v, want both of the topic's 2", partitions)
	}
}

// produceLaneRecords writes n records order-I to topic, alternating between
// partitions 0 and 1, each with the lane header lane-I.
func produceLaneRecords(t *testing.T, bootstrap, topic string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	must(t, err)
	defer cl.Close()
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		recs = append(recs, &kgo.Record{
			Partition: int32(i % 2),
			Key:       []byte(fmt.Sprintf("user-%d", i)),
			Value:     []byte(fmt.Sprintf("order-%d", i)),
			Headers:   []kgo.RecordHeader{{Key: laneHeader, Value: []byte(fmt.Sprintf("lane-%d", i))}},
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// consumeLaneRecords reads topic from the start as a member of a consumer
// group until n records have arrived, or fails after 60 s; it returns them
// by value.
func consumeLaneRecords(t *testing.T, bootstrap, topic string, n int) map[string]*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ConsumerGroup("e2e-lanes"), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	must(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := map[string]*kgo.Record{}
	for len(got) < n {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the deadline", len(got), n)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			t.Fatalf("fetch: %v", errs[0].Err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if _, dup := got[string(r.Value)]; dup {
				t.Errorf("record %s arrived twice", r.Value)
			}
			got[string(r.Value)] = r
		})
	}
	return got
}

func sameHeaders(a, b []kgo.RecordHeader) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || string(a[i].Value) != string(b[i].Value) {
			return false
		}
	}
	return true
}

func showHeaders(hs []kgo.RecordHeader) string {
	s := "["
	for i, h := range hs {
		if i > 0 {
			s += " "
		}
		s += h.Key + "=" + string(h.Value)
	}
	return s + "]"
}
