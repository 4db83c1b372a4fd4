package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
)

func (s *Server) registerTasks() {
	register(s, op("create-task", http.MethodPost, "/api/v1/apps/{app}/tasks",
		"Create a release task for a package, optionally releasing it at once", "tasks", 201), s.createTask)
	register(s, op("list-tasks", http.MethodGet, "/api/v1/apps/{app}/tasks", "List an app's tasks, newest first", "tasks", 0), s.listTasks)
	register(s, op("get-task", http.MethodGet, "/api/v1/apps/{app}/tasks/{id}", "Get a task", "tasks", 0), s.getTask)
	register(s, op("act-on-task", http.MethodPost, "/api/v1/apps/{app}/tasks/{id}/{action}",
		"Release, promote (gray to official), pause, resume or stop a task, or roll back a hotpatch; devices see the change at their next check", "tasks", 0), s.actOnTask)
	register(s, op("task-history", http.MethodGet, "/api/v1/apps/{app}/tasks/{id}/history", "A task's history, oldest first", "tasks", 0), s.taskHistory)
	register(s, op("set-targeting", http.MethodPut, "/api/v1/apps/{app}/tasks/{id}/targeting",
		"Replace a task's targeting; live tasks change at the next check", "tasks", 0), s.setTargeting)
	register(s, op("delete-task", http.MethodDelete, "/api/v1/apps/{app}/tasks/{id}",
		"Delete a draft or stopped task with its history", "tasks", 204), s.deleteTask)
}

type taskBody struct {
	Body *api.Task
}

type createTaskInput struct {
	App  string `path:"app" doc:"App slug"`
	Body api.CreateTask
}

func (s *Server) createTask(ctx context.Context, in *createTaskInput) (*taskBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, err
	}
	b := in.Body
	p, err := s.store.FindArtifact(ctx, a.ID, b.PackageID)
	if err != nil {
		return nil, err
	}
	policy, err := newPolicy(p.Kind, &b)
	if err != nil {
		return nil, err
	}
	tg := b.Targeting
	tg.Salt = "" // the server picks the salt
	t := &mds.Task{AppID: a.ID, Kind: p.Kind, ArtifactID: p.ID, Policy: policy, Status: mds.StatusDraft, Targeting: tg}
	if b.Release {
		t.Status = mds.StatusLive
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	actor := caller(ctx).Name
	if err := s.store.CreateTask(ctx, t, actor); err != nil {
		return nil, err
	}
	s.log.Info("task created", "app", a.Slug, "task", t.ID, "kind", t.Kind, "status", t.Status, "by", actor)
	s.refresh(ctx)
	s.released(t)
	return &taskBody{Body: api.NewTask(a, t, p)}, nil
}

// released wakes this node's delta builder when t makes a version of an
// offline package live, which may have queued deltas to it.
func (s *Server) released(t *mds.Task) {
	if t.Kind == mds.KindOffline && t.Status == mds.StatusLive && s.deltas != nil {
		s.deltas.Wake()
	}
}

// newPolicy builds the policy of a task of kind from the request.
func newPolicy(kind mds.Kind, b *api.CreateTask) (mds.TaskPolicy, error) {
	switch kind {
	case mds.KindUpgrade:
		return &mds.UpgradePolicy{Mode: b.Mode, RemindInterval: time.Duration(b.RemindIntervalSeconds) * time.Second}, nil
	case mds.KindHotpatch, mds.KindOffline, mds.KindConfig:
		if b.Mode != "" || b.RemindIntervalSeconds != 0 {
			return nil, mds.Errorf(mds.EINVALID, "mode and remind interval are for upgrades; a %s task takes neither", kind)
		}
		return kind.NewPolicy()
	}
	return nil, mds.Errorf(mds.EINVALID, "tasks of kind %s cannot be created here", kind)
}

type listTasksInput struct {
	App    string     `path:"app" doc:"App slug"`
	Status mds.Status `query:"status" enum:"draft,live,paused,stopped,rolled_back" doc:"Only tasks in this status"`
	Paging
}

type tasksBody struct {
	Body api.Tasks
}

func (s *Server) listTasks(ctx context.Context, in *listTasksInput) (*tasksBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	tasks, err := s.store.ListTasks(ctx, a.ID, in.Status, in.page())
	if err != nil {
		return nil, err
	}
	out := &tasksBody{Body: api.Tasks{Tasks: []*api.Task{}}}
	artifacts := map[int64]*mds.Artifact{}
	for _, t := range tasks {
		p, ok := artifacts[t.ArtifactID]
		if !ok && t.ArtifactID != 0 {
			if p, err = s.store.FindArtifact(ctx, a.ID, t.ArtifactID); err != nil {
				return nil, err
			}
			artifacts[t.ArtifactID] = p
		}
		out.Body.Tasks = append(out.Body.Tasks, api.NewTask(a, t, p))
	}
	out.Body.Next = next(len(tasks), in.Limit, func() string { return idCursor(tasks[len(tasks)-1].ID) })
	return out, nil
}

func (s *Server) getTask(ctx context.Context, in *objectPath) (*taskBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	t, err := s.store.FindTask(ctx, a.ID, in.ID)
	if err != nil {
		return nil, err
	}
	return s.taskBody(ctx, a, t)
}

func (s *Server) taskBody(ctx context.Context, a *mds.App, t *mds.Task) (*taskBody, error) {
	var p *mds.Artifact
	if t.ArtifactID != 0 {
		var err error
		if p, err = s.store.FindArtifact(ctx, a.ID, t.ArtifactID); err != nil {
			return nil, err
		}
	}
	return &taskBody{Body: api.NewTask(a, t, p)}, nil
}

type actionInput struct {
	App    string     `path:"app" doc:"App slug"`
	ID     int64      `path:"id"`
	Action mds.Action `path:"action" enum:"release,promote,pause,resume,stop,rollback"`
}

func (s *Server) actOnTask(ctx context.Context, in *actionInput) (*taskBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, err
	}
	actor := caller(ctx).Name
	t, err := s.store.UpdateTask(ctx, a.ID, in.ID, actor, func(t *mds.Task) (string, error) {
		return string(in.Action), t.Apply(in.Action)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("task changed", "app", a.Slug, "task", t.ID, "action", in.Action, "status", t.Status, "by", actor)
	s.refresh(ctx)
	s.released(t)
	return s.taskBody(ctx, a, t)
}

type historyInput struct {
	App string `path:"app" doc:"App slug"`
	ID  int64  `path:"id"`
	Paging
}

type historyBody struct {
	Body api.History
}

func (s *Server) taskHistory(ctx context.Context, in *historyInput) (*historyBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	events, err := s.store.TaskEvents(ctx, a.ID, in.ID, in.page())
	if err != nil {
		return nil, err
	}
	out := &historyBody{Body: api.History{Events: nonNil(events)}}
	out.Body.Next = next(len(events), in.Limit, func() string { return idCursor(events[len(events)-1].ID) })
	return out, nil
}

type targetingInput struct {
	App  string `path:"app" doc:"App slug"`
	ID   int64  `path:"id"`
	Body mds.Targeting
}

func (s *Server) setTargeting(ctx context.Context, in *targetingInput) (*taskBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, err
	}
	actor := caller(ctx).Name
	t, err := s.store.UpdateTask(ctx, a.ID, in.ID, actor, func(t *mds.Task) (string, error) {
		if t.Status.Finished() {
			return "", mds.Errorf(mds.ECONFLICT, "task %d is %s; create a new task", t.ID, t.Status)
		}
		return "targeting", t.SetTargeting(in.Body)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("task targeting changed", "app", a.Slug, "task", t.ID, "stage", t.Stage, "by", actor)
	s.refresh(ctx)
	return s.taskBody(ctx, a, t)
}

func (s *Server) deleteTask(ctx context.Context, in *objectPath) (*struct{}, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteTask(ctx, a.ID, in.ID); err != nil {
		return nil, err
	}
	s.log.Info("task deleted", "app", a.Slug, "task", in.ID, "by", caller(ctx).Name)
	return nil, nil
}
