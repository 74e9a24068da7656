package idempotency_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskevents/taskevents/kit/kittest"
	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
	"github.com/taskevents/taskevents/publisher/internal/idempotency"
)

func key(t *testing.T, v string) idempotency.Key {
	t.Helper()
	h := http.Header{}
	h.Set("Idempotency-Key", v)
	k, _, err := idempotency.FromHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rec(id string) idempotency.Record {
	return idempotency.Record{TaskID: id, Fingerprint: idempotency.Fingerprint("title of " + id)}
}

// storeUnderTest gives each Store implementation the same contract tests;
// advance moves that store's notion of time.
type storeUnderTest struct {
	name    string
	store   idempotency.Store
	advance func(time.Duration)
}

func stores(t *testing.T, ttl time.Duration) []storeUnderTest {
	c := kittest.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	fake := sidecartest.New(t)
	client := sidecar.New(sidecar.Options{BaseURL: fake.URL})
	t.Cleanup(client.Close)
	return []storeUnderTest{
		{"memory", idempotency.NewMemory(ttl, 1000, c.Now), c.Advance},
		{"dapr", idempotency.NewDapr(client, "statestore", ttl, 2*time.Second), fake.Advance},
	}
}

func TestStoreClaim(t *testing.T) {
	for _, s := range stores(t, time.Hour) {
		t.Run(s.name, func(t *testing.T) {
			ctx := context.Background()
			k := key(t, "claim-"+s.name)
			held, claimed, err := s.store.Claim(ctx, k, rec("first"))
			if err != nil || !claimed || held != rec("first") {
				t.Fatalf("first Claim = %+v, %v, %v; want the record, claimed", held, claimed, err)
			}
			held, claimed, err = s.store.Claim(ctx, k, rec("second"))
			if err != nil || claimed || held != rec("first") {
				t.Fatalf("second Claim = %+v, %v, %v; want the first record, not claimed", held, claimed, err)
			}
			if _, claimed, _ := s.store.Claim(ctx, key(t, "other-"+s.name), rec("third")); !claimed {
				t.Error("another key was not claimed")
			}

			// Just before the TTL the key is still held; at the TTL it is new again.
			s.advance(time.Hour - time.Second)
			if _, claimed, _ := s.store.Claim(ctx, k, rec("early")); claimed {
				t.Error("key claimed again before its TTL ran out")
			}
			s.advance(time.Second)
			held, claimed, err = s.store.Claim(ctx, k, rec("after-ttl"))
			if err != nil || !claimed || held != rec("after-ttl") {
				t.Fatalf("Claim after the TTL = %+v, %v, %v; want a new claim", held, claimed, err)
			}
		})
	}
}

func TestStoreConcurrentClaims(t *testing.T) {
	for _, s := range stores(t, time.Hour) {
		t.Run(s.name, func(t *testing.T) {
			k := key(t, "race")
			const n = 20
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				winners int
				ids     = map[string]int{}
			)
			for i := range n {
				wg.Go(func() {
					held, claimed, err := s.store.Claim(context.Background(), k, rec(strconv.Itoa(i)))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					defer mu.Unlock()
					if claimed {
						winners++
					}
					ids[held.TaskID]++
				})
			}
			wg.Wait()
			if winners != 1 || len(ids) != 1 {
				t.Errorf("%d winners, task ids %v; want one winner whose id all %d got", winners, ids, n)
			}
		})
	}
}

func TestMemoryIsBounded(t *testing.T) {
	c := kittest.NewClock(time.Now())
	m := idempotency.NewMemory(time.Hour, 3, c.Now)
	ctx := context.Background()
	for _, v := range []string{"a", "b", "c", "d"} {
		if _, claimed, _ := m.Claim(ctx, key(t, v), rec(v)); !claimed {
			t.Fatalf("%s not claimed", v)
		}
		c.Advance(time.Minute)
	}
	if m.Len() != 3 {
		t.Errorf("Len = %d, want the bound 3", m.Len())
	}
	// "a" was the oldest and made room for "d"; "b" is still held.
	if _, claimed, _ := m.Claim(ctx, key(t, "a"), rec("a2")); !claimed {
		t.Error(`"a" should have been evicted`)
	}
	if held, claimed, _ := m.Claim(ctx, key(t, "c"), rec("c2")); claimed || held.TaskID != "c" {
		t.Error(`"c" should still be held`)
	}
	// Expired keys go before any live one is evicted.
	c.Advance(time.Hour)
	if _, _, err := m.Claim(ctx, key(t, "e"), rec("e")); err != nil || m.Len() != 1 {
		t.Errorf("Len after every key expired = %d, want 1", m.Len())
	}
}

func TestDaprClaimRequests(t *testing.T) {
	fake := sidecartest.New(t)
	fake.Token = "tok"
	client := sidecar.New(sidecar.Options{BaseURL: fake.URL, APIToken: "tok"})
	t.Cleanup(client.Close)
	store := idempotency.NewDapr(client, "statestore", 24*time.Hour, 2*time.Second)
	k := key(t, "k1")
	if _, claimed, err := store.Claim(context.Background(), k, rec("t1")); err != nil || !claimed {
		t.Fatalf("Claim = %v, %v", claimed, err)
	}
	if _, claimed, err := store.Claim(context.Background(), k, rec("t2")); err != nil || claimed {
		t.Fatalf("second Claim = %v, %v", claimed, err)
	}
	saves := fake.StateSaves()
	if len(saves) != 2 || fake.StateGets() != 1 {
		t.Fatalf("saves %d, gets %d; want 2 saves (the second refused) and 1 read", len(saves), fake.StateGets())
	}
	s := saves[0]
	var v idempotency.Record
	if err := json.Unmarshal(s.Value, &v); err != nil || v != rec("t1") {
		t.Errorf("saved value %s, want the record of t1", s.Value)
	}
	if s.Store != "statestore" || s.Key != k.ID() || s.ETag == nil || *s.ETag != "0" ||
		s.Options["concurrency"] != "first-write" || s.Metadata["ttlInSeconds"] != "86400" || s.Status != 204 {
		t.Errorf("save = %+v, want key %s, etag 0, first-write, ttlInSeconds 86400, answered 204", s, k.ID())
	}
	if saves[1].Status != http.StatusConflict {
		t.Errorf("second save answered %d, want 409", saves[1].Status)
	}
}

func TestDaprClaimRoundsTTLUp(t *testing.T) {
	fake := sidecartest.New(t)
	client := sidecar.New(sidecar.Options{BaseURL: fake.URL})
	t.Cleanup(client.Close)
	for ttl, want := range map[time.Duration]string{time.Millisecond: "1", 1500 * time.Millisecond: "2", time.Minute: "60"} {
		store := idempotency.NewDapr(client, "statestore", ttl, time.Second)
		if _, _, err := store.Claim(context.Background(), key(t, ttl.String()), rec("x")); err != nil {
			t.Fatal(err)
		}
		saves := fake.StateSaves()
		if got := saves[len(saves)-1].Metadata["ttlInSeconds"]; got != want {
			t.Errorf("TTL %s: ttlInSeconds %q, want %q", ttl, got, want)
		}
	}
}

func TestDaprClaimErrors(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(*sidecartest.Fake)
		store      string
		wantUnavl  bool
		wantStatus int
		wantCode   string
	}{
		{name: "store down", setup: func(f *sidecartest.Fake) { f.FailState(&sidecartest.StateStoreDown) },
			wantUnavl: true, wantStatus: 500, wantCode: "ERR_STATE_SAVE"},
		{name: "sidecar gone", setup: func(f *sidecartest.Fake) { f.Close() }, wantUnavl: true},
		{name: "no such store", store: "nope", wantStatus: 400, wantCode: sidecar.CodeStateStoreNotFound},
		{name: "no state store at all", setup: func(f *sidecartest.Fake) { f.FailState(&sidecartest.NoStateStores) },
			wantStatus: 500, wantCode: sidecar.CodeStateStoreNotConfigured},
		{name: "wrong token", setup: func(f *sidecartest.Fake) { f.Token = "other" }, wantStatus: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := sidecartest.New(t)
			if tt.setup != nil {
				tt.setup(fake)
			}
			client := sidecar.New(sidecar.Options{BaseURL: fake.URL})
			t.Cleanup(client.Close)
			name := tt.store
			if name == "" {
				name = "statestore"
			}
			_, claimed, err := idempotency.NewDapr(client, name, time.Hour, time.Second).Claim(context.Background(), key(t, "k"), rec("x"))
			if claimed || err == nil {
				t.Fatalf("Claim = %v, %v; want an error", claimed, err)
			}
			var ue *sidecar.UnavailableError
			var ce *sidecar.ConfigError
			switch {
			case tt.wantUnavl:
				if !errors.As(err, &ue) || !errors.Is(err, sidecar.ErrUnavailable) || ue.Status != tt.wantStatus || ue.Code != tt.wantCode {
					t.Errorf("err = %v (%T), want unavailable with %d %s", err, err, tt.wantStatus, tt.wantCode)
				}
			default:
				if !errors.As(err, &ce) || ce.Status != tt.wantStatus || ce.Code != tt.wantCode {
					t.Errorf("err = %v (%T), want a ConfigError %d %s", err, err, tt.wantStatus, tt.wantCode)
				}
			}
		})
	}
}

// stubState answers from scripts, for the races the fake cannot stage.
type stubState struct {
	saves []error
	gets  []string // "" means not found
}

func (s *stubState) SaveState(context.Context, string, sidecar.StateItem) error {
	err := s.saves[0]
	s.saves = s.saves[1:]
	return err
}

func (s *stubState) GetState(context.Context, string, string) (sidecar.State, bool, error) {
	v := s.gets[0]
	s.gets = s.gets[1:]
	return sidecar.State{Value: []byte(v)}, v != "", nil
}

func TestDaprClaimRaces(t *testing.T) {
	taken := fmt.Errorf("%w: 409", sidecar.ErrETagMismatch)
	t.Run("holder expired between save and read", func(t *testing.T) {
		api := &stubState{saves: []error{taken, nil}, gets: []string{""}}
		held, claimed, err := idempotency.NewDapr(api, "s", time.Hour, time.Second).Claim(context.Background(), key(t, "k"), rec("mine"))
		if err != nil || !claimed || held != rec("mine") {
			t.Errorf("Claim = %+v, %v, %v; want claimed on the second save", held, claimed, err)
		}
	})
	t.Run("key keeps expiring", func(t *testing.T) {
		api := &stubState{saves: []error{taken, taken, taken}, gets: []string{"", "", ""}}
		_, _, err := idempotency.NewDapr(api, "s", time.Hour, time.Second).Claim(context.Background(), key(t, "k"), rec("mine"))
		if !errors.Is(err, sidecar.ErrUnavailable) {
			t.Errorf("err = %v, want unavailable after 3 rounds", err)
		}
	})
	t.Run("not a record", func(t *testing.T) {
		api := &stubState{saves: []error{taken}, gets: []string{`{"something":"else"}`}}
		_, claimed, err := idempotency.NewDapr(api, "s", time.Hour, time.Second).Claim(context.Background(), key(t, "k"), rec("mine"))
		if claimed || err == nil || !strings.Contains(err.Error(), "not an idempotency record") {
			t.Errorf("Claim = %v, %v; want an error naming the bad record", claimed, err)
		}
	})
}
