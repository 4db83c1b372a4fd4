package storetest

import (
	"testing"
	"time"

	"github.com/mds-dev/mds"
)

func testTokens(t *testing.T, s mds.Store) {
	shop := MustCreateApp(t, s, "shop")
	blog := MustCreateApp(t, s, "blog")
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	tok := &mds.Token{Name: "ci", Hash: mds.HashToken("secret-1"), ExpiresAt: &exp, CreatedBy: "root",
		Grants: []mds.Grant{{AppID: shop.ID, App: "shop", Role: mds.RoleReleaser}, {AppID: blog.ID, App: "blog", Role: mds.RoleViewer}}}
	if err := tok.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx(), tok); err != nil {
		t.Fatal(err)
	}
	got, err := s.FindTokenByHash(ctx(), mds.HashToken("secret-1"))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != tok.ID || got.Name != "ci" || got.Admin || got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) ||
		len(got.Grants) != 2 || got.Grants[0].App != "blog" || got.Grants[0].Role != mds.RoleViewer {
		t.Errorf("FindTokenByHash = %+v", got)
	}
	if !got.Can(shop.ID, mds.RoleReleaser) || got.Can(shop.ID, mds.RoleAdmin) || got.Can(blog.ID, mds.RoleReleaser) {
		t.Error("grants did not survive the round trip")
	}
	_, err = s.FindTokenByHash(ctx(), mds.HashToken("wrong"))
	wantCode(t, err, mds.ENOTFOUND)
	wantCode(t, s.CreateToken(ctx(), &mds.Token{Name: "ci", Hash: mds.HashToken("x"), Admin: true}), mds.ECONFLICT)

	admin := &mds.Token{Name: "root", Hash: mds.HashToken("root"), Admin: true, ExpiresAt: &exp}
	if err := s.CreateToken(ctx(), admin); err != nil {
		t.Fatal(err)
	}
	if err := s.RekeyToken(ctx(), admin.ID, mds.HashToken("root-2")); err != nil {
		t.Fatal(err)
	}
	if byName, err := s.FindTokenByName(ctx(), "root"); err != nil || byName.Hash != mds.HashToken("root-2") || !byName.Admin || byName.ExpiresAt != nil {
		t.Errorf("FindTokenByName after RekeyToken = %+v, %v; want the new hash and no expiry", byName, err)
	}
	list, err := s.ListTokens(ctx(), mds.Page{})
	if err != nil || len(list) != 2 || list[0].Name != "ci" || len(list[0].Grants) != 2 || len(list[1].Grants) != 0 {
		t.Errorf("ListTokens = %v, %v", list, err)
	}
	if byID, err := s.FindToken(ctx(), tok.ID); err != nil || byID.Name != "ci" || len(byID.Grants) != 2 {
		t.Errorf("FindToken = %+v, %v", byID, err)
	}
	if byID, err := s.FindToken(ctx(), admin.ID); err != nil || byID.Grants == nil {
		t.Errorf("admin token grants = %#v, %v; want an empty list", byID.Grants, err)
	}
	if err := s.DeleteToken(ctx(), tok.ID); err != nil {
		t.Fatal(err)
	}
	// IDs are never reused, even the highest one: a stale ID (a retried
	// `mds token revoke 7`) must not name a newer token.
	newest := &mds.Token{Name: "newest", Hash: mds.HashToken("secret-3"), Admin: true}
	if err := s.CreateToken(ctx(), newest); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteToken(ctx(), newest.ID); err != nil {
		t.Fatal(err)
	}
	again := &mds.Token{Name: "again", Hash: mds.HashToken("secret-4"), Admin: true}
	if err := s.CreateToken(ctx(), again); err != nil {
		t.Fatal(err)
	}
	if again.ID <= newest.ID {
		t.Errorf("new token got ID %d after %d was deleted; IDs must not be reused", again.ID, newest.ID)
	}
	wantCode(t, s.DeleteToken(ctx(), again.ID), "")
	_, err = s.FindTokenByHash(ctx(), mds.HashToken("secret-1"))
	wantCode(t, err, mds.ENOTFOUND)
	_, err = s.FindToken(ctx(), tok.ID)
	wantCode(t, err, mds.ENOTFOUND)
	wantCode(t, s.DeleteToken(ctx(), tok.ID), mds.ENOTFOUND)
	wantCode(t, s.RekeyToken(ctx(), tok.ID, "x"), mds.ENOTFOUND)
}
