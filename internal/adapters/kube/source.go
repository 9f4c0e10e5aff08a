package kube

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic/dynamicinformer"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/runtime/control"
)

// Applier puts one release change in force, or holds it for its
// effective_at (Result.Pending): the change pipeline, *control.Pipeline.
type Applier interface {
	Submit(control.Change) (control.Result, error)
}

// Source lists and watches the GrayRelease objects of one namespace and
// puts every change in force, one object at a time, in name order, so a
// change graymesh refuses leaves every other release's change standing.
// It is part of Fleet (control.Fleet).
type Source struct {
	client *Client
	log    *slog.Logger
	inf    cache.SharedIndexInformer
	kick   chan struct{}
	// passed wakes the status writer, and reported the node report,
	// after each pass.
	passed, reported chan struct{}

	mu sync.Mutex
	// accepted is, per release, the object and generation in force.
	accepted map[string]objGen
	// refused is, per release, the generation refused and why; it is not
	// tried again until the object changes.
	refused map[string]refusal
	// held is, per release, the generation the daemon holds for its
	// effective_at: not in force, so not in the version, until Due.
	held map[string]objGen
	// deleting is, per release, the object being deleted (deletionTimestamp
	// set, held by the finalizer): out of the policy, its current
	// generation still in the version.
	deleting map[string]objGen
	// gone is, per object this node saw deleted, its final generation,
	// until the fleet record lists it.
	gone map[types.UID]int64
	// record is the fleet record (ConfigMap FleetConfigMap) as last seen.
	record fleetRecord
	// served is the version last put in force.
	served string
	// fleetInf watches the fleet record; core writes it.
	fleetInf cache.SharedIndexInformer
	core     corev1client.CoreV1Interface
	// electedDuties run while this node is the elected writer (WhileElected).
	electedDuties []func(context.Context)

	synced     atomic.Bool
	staleSince atomic.Int64 // unix nanoseconds; 0 while current
}

type objGen struct {
	uid types.UID
	gen int64
}

type refusal struct {
	objGen
	err error
}

// NewSource prepares the informer; it does no I/O.
func NewSource(c *Client, log *slog.Logger) *Source {
	s := &Source{client: c, log: log.With("component", "kube", "namespace", c.Namespace),
		kick: make(chan struct{}, 1), passed: make(chan struct{}, 1), reported: make(chan struct{}, 1), accepted: map[string]objGen{}, refused: map[string]refusal{}, held: map[string]objGen{},
		deleting: map[string]objGen{}, gone: map[types.UID]int64{}, served: "0"}
	// No resync: the watch delivers every change; a periodic resync would
	// only replay the cache.
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(c.Dynamic, 0, c.Namespace, nil)
	s.inf = f.ForResource(GVR).Informer()
	kick := func(any) { s.poke() }
	_, _ = s.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: kick, DeleteFunc: s.deleted, UpdateFunc: func(_, n any) { kick(n) },
	})
	s.fleetInf = newFleetInformer(c)
	// NewForConfig does no I/O.
	s.core, _ = corev1client.NewForConfig(c.Config)
	record := func(o any) {
		if u, ok := o.(*unstructured.Unstructured); ok {
			s.setRecord(u)
		}
	}
	// A deleted ConfigMap keeps the last record: forgetting it would lower
	// the version.
	_, _ = s.fleetInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: record, UpdateFunc: func(_, n any) { record(n) },
	})
	_ = s.inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		s.markStale(err)
	})
	// A refused connection is retried by the reflector without calling
	// the handler above; the dialer tells.
	stale := s.markStale
	c.dialFailed.Store(&stale)
	return s
}

func (s *Source) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Start runs the informer and waits for its initial list (the reflector
// retries with backoff meanwhile). It returns once the cache holds every
// object, or ctx's error.
func (s *Source) Start(ctx context.Context) error {
	go s.inf.RunWithContext(ctx)
	go s.fleetInf.RunWithContext(ctx)
	s.log.Info("listing GrayRelease objects and the fleet record")
	if !cache.WaitForCacheSync(ctx.Done(), s.inf.HasSynced, s.fleetInf.HasSynced) {
		return ctx.Err()
	}
	return nil
}

// Sync puts the listed objects in force before the node reports ready.
// An object whose current generation the fleet refused (status
// Accepted=False) starts from its last accepted spec, so a node that
// starts with nothing still has something to compare the refused change
// against, and refuses it as the others did. So does an object whose
// current generation waits for its effective_at: the running nodes serve
// the last accepted spec until then, and so does this one.
func (s *Source) Sync(ap Applier) {
	for _, u := range s.objects() {
		gr, err := fromUnstructured(u)
		if err != nil || gr.Status.AcceptedSpec == nil || gr.Status.AcceptedGeneration == gr.Generation || u.GetDeletionTimestamp() != nil {
			continue
		}
		if _, at := declaration(&gr.Spec); !refusedNow(gr.Status.Conditions, gr.Generation) && (at == nil || !time.Now().Before(*at)) {
			continue
		}
		rel, err := Release(gr.Name, gr.Status.AcceptedSpec)
		if err != nil {
			continue
		}
		og := objGen{uid: gr.UID, gen: gr.Status.AcceptedGeneration}
		ch, _ := declaration(gr.Status.AcceptedSpec)
		if s.applyOne(ap, gr.Name, og, &rel, ch, nil) == nil {
			s.log.Info("starting from the last accepted spec", "release", gr.Name, "generation", og.gen)
		}
	}
	s.pass(ap)
	s.synced.Store(true)
}

// refusedNow reports whether the conditions say generation gen was refused.
func refusedNow(conds []metav1.Condition, gen int64) bool {
	for _, c := range conds {
		if c.Type == CondAccepted {
			return c.Status == metav1.ConditionFalse && c.ObservedGeneration == gen
		}
	}
	return false
}

// Run keeps the daemon in step with the objects until ctx is done.
func (s *Source) Run(ctx context.Context, ap Applier) {
	t := time.NewTicker(probeInterval / 4)
	defer t.Stop()
	backoff, next := probeInterval/2, time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
			s.pass(ap)
		case now := <-t.C:
			switch {
			case s.staleSince.Load() == 0:
				backoff, next = probeInterval/2, time.Time{}
			case now.Before(next):
			case s.probe(ctx):
				backoff, next = probeInterval/2, time.Time{}
			default:
				var wait time.Duration
				backoff, wait = probeBackoff(backoff, rand.Float64())
				next = now.Add(wait)
			}
		}
	}
}

// objects lists the cache in name order.
func (s *Source) objects() []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range s.inf.GetStore().List() {
		if u, ok := o.(*unstructured.Unstructured); ok {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b *unstructured.Unstructured) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// pass puts in force every object whose generation is neither in force
// nor refused, then removes the releases whose objects are gone, then
// moves the version when only deleted objects' generations moved it.
func (s *Source) pass(ap Applier) {
	seen := map[string]bool{}
	for _, u := range s.objects() {
		name := u.GetName()
		seen[name] = true
		og := objGen{uid: u.GetUID(), gen: u.GetGeneration()}
		s.replaced(name, og.uid)
		if u.GetDeletionTimestamp() != nil {
			s.removeDeleting(ap, name, og)
			continue
		}
		s.mu.Lock()
		done := s.accepted[name] == og || s.refused[name].objGen == og || s.held[name] == og
		s.mu.Unlock()
		if done {
			continue
		}
		gr, err := fromUnstructured(u)
		var rel config.Release
		if err == nil {
			rel, err = Release(name, &gr.Spec)
		}
		if err != nil {
			s.refuse(name, og, err)
			continue
		}
		ch, at := declaration(&gr.Spec)
		_ = s.applyOne(ap, name, og, &rel, ch, at)
	}
	for _, name := range s.forgetGone(seen) {
		// Deleting the object is the operator's explicit act: it counts
		// as a declared rollback, as removing the item from a file with
		// change.rollback would.
		_ = s.applyOne(ap, name, objGen{}, nil, config.Change{Rollback: true, Reason: "GrayRelease deleted"}, nil)
	}
	s.syncVersion(ap)
	for _, c := range []chan struct{}{s.passed, s.reported} {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// removeDeleting takes a deleting object's release out of the policy, as
// its deletion would (a declared rollback), while its generation keeps
// counting in the version until the fleet record holds it.
func (s *Source) removeDeleting(ap Applier, name string, og objGen) {
	s.mu.Lock()
	_, inForce := s.accepted[name]
	done := s.deleting[name] == og && !inForce
	s.deleting[name] = og
	s.mu.Unlock()
	if !done {
		_ = s.applyOne(ap, name, og, nil, config.Change{Rollback: true, Reason: "GrayRelease deleted"}, nil)
	}
}

// replaced notes that name is now object uid: a previous object of that
// name was deleted without this node seeing it go, and its generation
// moves to gone.
func (s *Source) replaced(name string, uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range []map[string]objGen{s.accepted, s.deleting} {
		if og, ok := m[name]; ok && og.uid != uid {
			s.goneLocked(og.uid, og.gen)
			delete(m, name)
		}
	}
}

// forgetGone drops the releases whose objects are no longer listed: their
// generations move to gone. It returns the names still in force, for the
// caller to remove.
func (s *Source) forgetGone(seen map[string]bool) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var inForce []string
	for name, og := range s.accepted {
		if !seen[name] {
			s.goneLocked(og.uid, og.gen)
			inForce = append(inForce, name)
		}
	}
	for name, og := range s.deleting {
		if !seen[name] {
			s.goneLocked(og.uid, og.gen)
			delete(s.deleting, name)
		}
	}
	for name := range s.held {
		if !seen[name] {
			delete(s.held, name)
		}
	}
	for name := range s.refused {
		if !seen[name] {
			delete(s.refused, name)
		}
	}
	slices.Sort(inForce)
	return inForce
}

// goneLocked records that object uid is gone at generation gen (the
// highest seen), unless the fleet record already counts it. The caller
// holds mu.
func (s *Source) goneLocked(uid types.UID, gen int64) {
	if s.record.lists(uid) {
		return
	}
	if gen > s.gone[uid] {
		s.gone[uid] = gen
	}
}

// deleted is the informer's DeleteFunc: the object's final state (or the
// last state known, after a relist) gives the generation it goes with.
func (s *Source) deleted(o any) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	if u, ok := o.(*unstructured.Unstructured); ok {
		s.mu.Lock()
		s.goneLocked(u.GetUID(), u.GetGeneration())
		s.mu.Unlock()
	}
	s.poke()
}

// setRecord takes the fleet record from the ConfigMap and forgets the
// deletions it lists.
func (s *Source) setRecord(u *unstructured.Unstructured) {
	data, _, _ := unstructured.NestedStringMap(u.Object, "data")
	rec := parseRecord(data)
	s.mu.Lock()
	s.record = rec
	for uid := range s.gone {
		if rec.lists(uid) {
			delete(s.gone, uid)
		}
	}
	s.mu.Unlock()
	s.poke()
}

// syncVersion puts the version in force when deleted objects' generations
// moved it with no release changing (a deletion this node saw later than
// the record, or the other way round, after a restart).
func (s *Source) syncVersion(ap Applier) {
	v := s.versionWith("", objGen{})
	s.mu.Lock()
	same := v == s.served
	s.mu.Unlock()
	if same {
		return
	}
	if _, err := ap.Submit(control.ReleaseChange{Version: v, Change: config.Change{Reason: "deleted GrayRelease generations recorded"}}); err != nil {
		s.log.Warn("fleet version not moved", "version", v, "error", err)
		return
	}
	s.mu.Lock()
	s.served = v
	s.mu.Unlock()
}

// applyOne offers one change to the daemon and records the outcome.
// og zero with rel nil removes the release.
func (s *Source) applyOne(ap Applier, name string, og objGen, rel *config.Release, ch config.Change, at *time.Time) error {
	version := s.versionWith(name, og)
	res, err := ap.Submit(control.ReleaseChange{Name: name, Release: rel, EffectiveAt: at, Change: ch, Version: version})
	pending := res.Pending
	if err != nil {
		s.refuse(name, og, err)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, name)
	if pending {
		// The release keeps its generation in force, and the version
		// counts that one, until the daemon says the change is due.
		s.held[name] = og
		return nil
	}
	s.served = version
	if rel == nil {
		delete(s.accepted, name)
	} else {
		s.accepted[name] = og
	}
	delete(s.refused, name)
	return nil
}

func (s *Source) refuse(name string, og objGen, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refused[name] = refusal{objGen: og, err: err}
	delete(s.held, name)
	s.log.Warn("GrayRelease refused; the release keeps its state in force", "release", name, "generation", og.gen, "error", err)
}

// versionWith is the fleet version once name is at og (out of the sum
// when og is zero): the sum of the generations in force, of the objects
// being deleted, and of the objects deleted (deletedSum). Every node that
// has put the same objects in force computes the same number, and it
// never goes down: the API server raises an object's generation on each
// spec change (never on a status or metadata write) and once more when a
// deletion starts, and a deleted object's generation stays in the sum.
func (s *Source) versionWith(name string, og objGen) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := og.gen
	live := map[types.UID]bool{og.uid: og.uid != ""}
	// name's entries are what og replaces: an object removed (og zero) is
	// no longer live, so its generation counts through gone.
	for n, a := range s.accepted {
		if n == name {
			continue
		}
		live[a.uid] = true
		if _, del := s.deleting[n]; !del {
			sum += a.gen
		}
	}
	for n, d := range s.deleting {
		if n == name {
			continue
		}
		live[d.uid] = true
		sum += d.gen
	}
	return strconv.FormatInt(sum+deletedSum(live, s.record, s.gone), 10)
}

// Due is part of control.Fleet: release's held change has reached its
// effective_at; the next pass offers it again.
func (s *Source) Due(release string) {
	s.mu.Lock()
	delete(s.held, release)
	s.mu.Unlock()
	s.poke()
}

// Synced is part of control.Fleet.
func (s *Source) Synced() bool { return s.synced.Load() }

// Status is part of control.Fleet.
func (s *Source) Status() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	accepted := s.acceptedGenerations()
	refused := map[string]any{}
	for n, r := range s.refused {
		refused[n] = map[string]any{"generation": r.gen, "error": r.err.Error()}
	}
	held := map[string]int64{}
	for n, h := range s.held {
		held[n] = h.gen
	}
	return map[string]any{
		"source": "kubernetes", "namespace": s.client.Namespace, "synced": s.synced.Load(),
		"stale_seconds": s.Staleness().Seconds(), "accepted_generations": accepted, "refused": refused,
		"held_generations": held,
	}
}

// CondAccepted is the condition type graymesh writes.
const CondAccepted = "Accepted"
