package e2e

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/graymesh/graymesh/internal/testing/toolcache"
)

// kafkaVersion is the release scripts/install-kafka.sh installs.
const kafkaVersion = "4.4.0"

// kafkaStartTimeout is generous: format and start took 4–5 s on 2 shared
// cores with a load average of 3; a machine busier still may take several
// times that.
const kafkaStartTimeout = 90 * time.Second

// kafkaJVMFlags keep the JVM small and quick to start on 2 shared cores:
// a bounded heap (the default takes a quarter of the machine's memory),
// the serial collector (no GC threads competing with the test for the
// cores) and the C1 compiler only (a short-lived broker gains nothing from
// C2 but its compile time).
var kafkaJVMFlags = []string{"-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"}

// kafkaBroker is a real one-node Kafka cluster (broker and KRaft
// controller in one process) on loopback.
type kafkaBroker struct {
	// Bootstrap is the PLAINTEXT listener, host:port, for clients.
	Bootstrap string
	admin     *kadm.Client
	proc      *process
}

// findKafka returns the Kafka install (its libs/ holds the jars) and the
// java to run it with, or an error saying what is missing.
func findKafka() (home, java string, err error) {
	home = os.Getenv("KAFKA_HOME")
	if home == "" {
		cache, err := toolcache.Dir()
		if err != nil {
			return "", "", err
		}
		home = filepath.Join(cache, "kafka-"+kafkaVersion)
	}
	if _, err := os.Stat(filepath.Join(home, "libs", "kafka_2.13-"+kafkaVersion+".jar")); err != nil {
		return "", "", fmt.Errorf("no Kafka %s at %s", kafkaVersion, home)
	}
	java, err = exec.LookPath("java")
	if err != nil {
		return "", "", fmt.Errorf("no java on PATH (Kafka %s needs Java 17 or later)", kafkaVersion)
	}
	return home, java, nil
}

// kafkaConfig is server.properties for one process that is both broker and
// the single KRaft controller, everything on loopback.
const kafkaConfig = `process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{{CONTROLLER}}
listeners=PLAINTEXT://127.0.0.1:{{PLAINTEXT}},CONTROLLER://127.0.0.1:{{CONTROLLER}}
advertised.listeners=PLAINTEXT://127.0.0.1:{{PLAINTEXT}}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={{DATA}}
# One broker: every internal topic has one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# The first consumer group creates __consumer_offsets: one partition, not
# 50, is created at once; and a group's first member is not held back 3 s
# for others to join.
offsets.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
`

// writeKafkaConfig writes server.properties into dir with the two
// listeners' ports, and the data directory beside it.
func writeKafkaConfig(t *testing.T, dir string, plaintext, controller int) string {
	t.Helper()
	cfg := strings.NewReplacer(
		"{{PLAINTEXT}}", fmt.Sprint(plaintext),
		"{{CONTROLLER}}", fmt.Sprint(controller),
		"{{DATA}}", filepath.Join(dir, "kafka-data"),
	).Replace(kafkaConfig)
	path := filepath.Join(dir, "server.properties")
	must(t, os.WriteFile(path, []byte(cfg), 0o600))
	return path
}

// kafkaCommand is java running class main of the install at home with the
// small-JVM flags; temporary files (the compression codecs unpack native
// libraries there) stay in dir.
func kafkaCommand(home, dir, main string, args ...string) []string {
	cmd := append([]string{}, kafkaJVMFlags...)
	cmd = append(cmd, "-Djava.io.tmpdir="+dir, "-cp", filepath.Join(home, "libs", "*"), main)
	return append(cmd, args...)
}

// formatKafkaStorage formats the data directory for a new cluster with
// this node as its only controller (KRaft needs it before the first start).
func formatKafkaStorage(t *testing.T, java, home, dir, config string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kafkaStartTimeout)
	defer cancel()
	args := kafkaCommand(home, dir, "kafka.tools.StorageTool", "format", "--standalone", "-t", newKafkaClusterID(t), "-c", config)
	out, err := exec.CommandContext(ctx, java, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("kafka storage format: %v\n%s", err, tail(out, 4000))
	}
}

// newKafkaClusterID is a random cluster id in Kafka's form: 16 bytes in
// URL-safe base64 without padding. Its first character is never '-' or
// '_': the storage tool's argument parser reads an id starting with '-' as
// an option ("--cluster-id: expected one argument", one start in 64).
func newKafkaClusterID(t *testing.T) string {
	t.Helper()
	id := make([]byte, 16)
	_, err := crand.Read(id)
	must(t, err)
	id[0] &= 0x7f // the first character encodes the top 6 bits: at most 31, a letter
	return base64.RawURLEncoding.EncodeToString(id)
}

// startKafka starts a fresh one-node Kafka on free loopback ports, its
// config and data in the test's temporary directory, and returns it once a
// metadata request names the broker. It is killed when the test ends.
func startKafka(t *testing.T) *kafkaBroker {
	t.Helper()
	home, java, err := findKafka()
	if err != nil {
		missingPart(t, err, "make kafka (or set KAFKA_HOME)")
	}
	dir := t.TempDir()
	plaintext, controller := freePort(t), freePort(t)
	config := writeKafkaConfig(t, dir, plaintext, controller)
	began := time.Now()
	formatKafkaStorage(t, java, home, dir, config)
	formatted := time.Now()
	b := &kafkaBroker{Bootstrap: fmt.Sprintf("127.0.0.1:%d", plaintext)}
	b.proc = start(t, dir, "kafka", java, kafkaCommand(home, dir, "kafka.Kafka", config)...)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Bootstrap))
	must(t, err)
	t.Cleanup(cl.Close)
	b.admin = kadm.NewClient(cl)
	waitFor(t, "kafka", kafkaStartTimeout, b.answersMetadata(t))
	t.Logf("kafka %s ready in %s (storage format %s, broker start %s)", kafkaVersion,
		time.Since(began).Round(100*time.Millisecond), formatted.Sub(began).Round(100*time.Millisecond),
		time.Since(formatted).Round(100*time.Millisecond))
	return b
}

// answersMetadata checks that the broker answers a metadata request and
// lists itself. It fails the test at once if the broker has exited: no
// later try can succeed then.
func (b *kafkaBroker) answersMetadata(t *testing.T) func() error {
	return func() error {
		select {
		case <-b.proc.done:
			t.Fatalf("kafka exited before it was ready: %v", b.proc.cmd.ProcessState)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		md, err := b.admin.BrokerMetadata(ctx)
		if err != nil {
			return err
		}
		if len(md.Brokers) == 0 {
			return errors.New("metadata lists no broker")
		}
		return nil
	}
}

// createTopic creates topic name with partitions partitions (one replica
// each) and waits until every partition has a leader, so clients can
// produce to it at once.
func (b *kafkaBroker) createTopic(t *testing.T, name string, partitions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.admin.CreateTopic(ctx, int32(partitions), 1, nil, name); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	waitFor(t, "topic "+name+" leaders", 30*time.Second, func() error {
		md, err := b.admin.Metadata(ctx, name)
		if err != nil {
			return err
		}
		td := md.Topics[name]
		if td.Err != nil {
			return td.Err
		}
		if len(td.Partitions) != partitions {
			return fmt.Errorf("topic %s has %d partitions, want %d", name, len(td.Partitions), partitions)
		}
		for _, p := range td.Partitions {
			if p.Err != nil {
				return fmt.Errorf("topic %s partition %d: %w", name, p.Partition, p.Err)
			}
			if p.Leader < 0 {
				return fmt.Errorf("topic %s partition %d has no leader yet", name, p.Partition)
			}
		}
		return nil
	})
}
