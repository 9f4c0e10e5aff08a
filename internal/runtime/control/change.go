package control

import (
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// Change is what Submit takes: Reload, ReleaseChange or Action.
type Change interface {
	// propose builds the candidate config; the caller holds mu. The
	// proposal is never nil, so a refusal is recorded with its source.
	propose(p *Pipeline) (*proposal, error)
}

// proposal is one change on its way through the pipeline.
type proposal struct {
	// source names the change when held or refused; putSource when put
	// in force.
	source, putSource string
	next              *config.Config
	// scope is where the change is held until holdAt (when it is to
	// come); replaces is the scope whose held change it replaces as soon
	// as it is submitted (noScope: none).
	scope, replaces string
	holdAt          *time.Time
	// due runs when the held change's instant comes, with the change;
	// still reports whether it is still the one held.
	due func(still func() bool, next *config.Config)
	// commit keeps what the change needs once accepted, held or in
	// force; undo puts back what propose changed early, on refusal.
	commit func(held bool)
	undo   func()
	// describe wraps a refusal's error.
	describe func(error) error
	logAttrs []any
	held     bool
}

// Reload re-reads the config file. A file that fails validation, or that
// would evict gray subjects without declaring a rollback, is refused and
// the config in force stays.
type Reload struct{}

func (Reload) propose(p *Pipeline) (*proposal, error) {
	prop := &proposal{source: SourceFile, putSource: SourceFile, scope: fileScope, replaces: noScope, due: p.fileDue(SourceFile)}
	file, next, err := p.readFile()
	if err != nil {
		return prop, err
	}
	prop.next, prop.holdAt = next, next.EffectiveAt
	prop.commit = func(bool) { p.file = file }
	return prop, nil
}

// fileDue puts the file scope's held change in force at its instant; it
// passed the gate when it was accepted.
func (p *Pipeline) fileDue(source string) func(func() bool, *config.Config) {
	return func(still func() bool, next *config.Config) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.holds.take(fileScope, still) {
			return
		}
		if err := p.put(next, source+" (effective_at)"); err != nil {
			p.refused(source+" (effective_at)", err, next)
		}
	}
}
