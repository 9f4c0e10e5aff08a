package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/lanequeue"
	"github.com/graymesh/graymesh/lanequeue/lanekafka"
)

// messageAsk is what `graymesh explain --message` is asked: a message's
// lane, when it was produced, and where its consumers are.
type messageAsk struct {
	admin, lane, brokers, group string
	// at is when the message was produced, RFC 3339 ("": now).
	at string
}

// MessageExplanation is which consumer takes a message and why
// (`graymesh explain --message --json`).
type MessageExplanation struct {
	ProducedAt time.Time          `json:"produced_at"`
	Decision   lanequeue.Decision `json:"decision"`
	// Group is the consumer group of the lane's environment; Live whether
	// it has a member (nil: not asked, no --kafka).
	Group string `json:"group,omitempty"`
	Live  *bool  `json:"live,omitempty"`
	// ConsumedBy is the environment whose consumers take the message, and
	// ConsumerGroup their group (known with --group).
	ConsumedBy    string `json:"consumed_by"`
	ConsumerGroup string `json:"consumer_group,omitempty"`
	LaneState     string `json:"lane_state"`
	ConfigVersion string `json:"config_version"`
}

// explainMessage answers `graymesh explain --message`: the decision a
// lanequeue consumer makes for a message carrying ask.lane, with the lane
// state of the graymesh at ask.admin, and, given the broker and the
// group, whether the lane's environment has a live consumer to take it.
func explainMessage(ask messageAsk, asJSON bool, stdout io.Writer) error {
	if ask.admin == "" {
		return fmt.Errorf("explain --message: --admin is required: a consumer decides with a running graymesh's lane state (GET /v1/lanes)")
	}
	if ask.brokers != "" && ask.group == "" {
		return fmt.Errorf("explain --message: --kafka needs --group (stable's consumer group)")
	}
	producedAt := time.Now()
	if ask.at != "" {
		t, err := time.Parse(time.RFC3339Nano, ask.at)
		if err != nil {
			return fmt.Errorf("--at: %w", err)
		}
		producedAt = t
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	url := strings.TrimSuffix(ask.admin, "/") + "/v1/lanes"
	f, err := lanequeue.NewFollower(ctx, url)
	if err != nil {
		return fmt.Errorf("explain --message: %w", err)
	}
	ex := MessageExplanation{ProducedAt: producedAt, LaneState: url, ConfigVersion: f.ConfigVersion()}
	ex.Decision = f.Decide(ctx, ask.lane, producedAt)
	live := func(string) bool { return true }
	if ask.group != "" {
		ex.Group = lanekafka.GroupOf(ask.group, ex.Decision.Env)
	}
	if ask.brokers != "" && ex.Decision.Env != lanequeue.Stable {
		isLive, err := groupLive(ctx, ask.brokers, ex.Group)
		if err != nil {
			return fmt.Errorf("explain --message: reading group %s: %w", ex.Group, err)
		}
		ex.Live = &isLive
		live = func(string) bool { return isLive }
	}
	ex.ConsumedBy = lanequeue.ConsumerOf(ex.Decision, live)
	if ask.group != "" {
		ex.ConsumerGroup = lanekafka.GroupOf(ask.group, ex.ConsumedBy)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ex)
	}
	printMessageExplanation(stdout, ex)
	return nil
}

// groupLive reads whether a consumer group has a member.
func groupLive(ctx context.Context, brokers, group string) (bool, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		return false, err
	}
	defer cl.Close()
	live, err := lanekafka.LiveGroups(ctx, kadm.NewClient(cl), group)
	return live[group], err
}

// printMessageExplanation writes a message's explanation for a person.
func printMessageExplanation(w io.Writer, ex MessageExplanation) {
	d := ex.Decision
	lane := "none"
	switch {
	case d.Problem != "":
		lane = "refused (" + d.Problem + ")"
	case d.Release != "":
		lane = "verified, release " + d.Release
	}
	if d.Stress {
		lane += ", stress test (shadow load)"
	}
	fmt.Fprintf(w, "lane:        %s\nenvironment: %s\nreason:      %s\nproduced:    %s\n", lane, d.Env, d.Reason, ex.ProducedAt.Format(time.RFC3339Nano))
	by := ex.ConsumedBy + "'s consumers"
	if ex.ConsumerGroup != "" {
		by += " (group " + ex.ConsumerGroup + ")"
	}
	switch {
	case d.Env == lanequeue.Stable:
	case ex.Live == nil:
		by += fmt.Sprintf(" while %s has a live consumer; stable's otherwise (--kafka and --group read the group)", d.Env)
	case !*ex.Live:
		by += fmt.Sprintf(": group %s has no member, stable stands in (fallback %s%s)", ex.Group, d.Env, wire.UnavailableSuffix)
	default:
		by += ": the group has a member"
	}
	fmt.Fprintf(w, "consumed by: %s\nlane state:  %s (config version %s)\n", by, ex.LaneState, ex.ConfigVersion)
}
