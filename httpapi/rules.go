package httpapi

import (
	"context"
	"net/http"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
)

func (s *Server) registerRules() {
	register(s, op("create-rule-set", http.MethodPost, "/api/v1/apps/{app}/rule-sets", "Save a named, reusable rule set", "rules", 201), s.createRuleSet)
	register(s, op("list-rule-sets", http.MethodGet, "/api/v1/apps/{app}/rule-sets", "List an app's rule sets", "rules", 0), s.listRuleSets)
	register(s, op("get-rule-set", http.MethodGet, "/api/v1/apps/{app}/rule-sets/{id}", "Get a rule set", "rules", 0), s.getRuleSet)
	register(s, op("update-rule-set", http.MethodPut, "/api/v1/apps/{app}/rule-sets/{id}",
		"Replace a rule set; every task using it follows at the next check", "rules", 0), s.updateRuleSet)
	register(s, op("delete-rule-set", http.MethodDelete, "/api/v1/apps/{app}/rule-sets/{id}", "Delete a rule set no running task uses", "rules", 204), s.deleteRuleSet)
}

type ruleSetInput struct {
	App  string `path:"app" doc:"App slug"`
	Body api.SaveRuleSet
}

type ruleSetBody struct {
	Body *mds.RuleSet
}

func (s *Server) createRuleSet(ctx context.Context, in *ruleSetInput) (*ruleSetBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, err
	}
	rs := &mds.RuleSet{AppID: a.ID, Name: in.Body.Name, Rules: in.Body.Rules}
	if err := rs.Validate(); err != nil {
		return nil, err
	}
	if err := s.store.CreateRuleSet(ctx, rs); err != nil {
		return nil, err
	}
	return &ruleSetBody{Body: rs}, nil
}

type listRuleSetsInput struct {
	App string `path:"app" doc:"App slug"`
	Paging
}

type ruleSetsBody struct {
	Body api.RuleSets
}

func (s *Server) listRuleSets(ctx context.Context, in *listRuleSetsInput) (*ruleSetsBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	list, err := s.store.ListRuleSets(ctx, a.ID, in.page())
	if err != nil {
		return nil, err
	}
	out := &ruleSetsBody{Body: api.RuleSets{RuleSets: nonNil(list)}}
	out.Body.Next = next(len(list), in.Limit, func() string { return list[len(list)-1].Name })
	return out, nil
}

func (s *Server) getRuleSet(ctx context.Context, in *objectPath) (*ruleSetBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	rs, err := s.store.FindRuleSet(ctx, a.ID, in.ID)
	if err != nil {
		return nil, err
	}
	return &ruleSetBody{Body: rs}, nil
}

type updateRuleSetInput struct {
	App  string `path:"app" doc:"App slug"`
	ID   int64  `path:"id"`
	Body api.SaveRuleSet
}

func (s *Server) updateRuleSet(ctx context.Context, in *updateRuleSetInput) (*ruleSetBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, err
	}
	rs, err := s.store.FindRuleSet(ctx, a.ID, in.ID)
	if err != nil {
		return nil, err
	}
	rs.Name, rs.Rules = in.Body.Name, in.Body.Rules
	if err := rs.Validate(); err != nil {
		return nil, err
	}
	if err := s.store.UpdateRuleSet(ctx, rs); err != nil {
		return nil, err
	}
	s.log.Info("rule set changed", "app", a.Slug, "rule_set", rs.ID, "by", caller(ctx).Name)
	s.refresh(ctx)
	return &ruleSetBody{Body: rs}, nil
}

func (s *Server) deleteRuleSet(ctx context.Context, in *objectPath) (*struct{}, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, err
	}
	return nil, s.store.DeleteRuleSet(ctx, a.ID, in.ID)
}
