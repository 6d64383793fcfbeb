package forge

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// GitHub-shaped payloads. GitHub documents them at
// https://docs.github.com/en/webhooks/webhook-events-and-payloads; Gitea
// (and Forgejo, which sends the same) copies their shape in its
// modules/structs/hook.go, with a few differences that ghDialect names.
// One set of types decodes both. Only the fields ferry reads are declared.

// ghDialect is what tells GitHub's payloads from Gitea's.
type ghDialect struct {
	// name is the forge's name in errors.
	name string
	// synchronize is the pull request action for new commits.
	synchronize string
	// truncated reports whether a push lists fewer commits than it
	// pushed, so that its changed files are unknown.
	truncated func(p *ghPush) bool
}

// ghMaxCommits is how many commits GitHub lists in a push payload at most;
// a push with more is truncated.
const ghMaxCommits = 20

var (
	githubDialect = &ghDialect{name: "github", synchronize: "synchronize",
		truncated: func(p *ghPush) bool { return len(p.Commits) >= ghMaxCommits }}
	giteaDialect = &ghDialect{name: "gitea", synchronize: "synchronized",
		truncated: func(p *ghPush) bool { return p.TotalCommits > len(p.Commits) }}
)

type ghUser struct {
	ID    int64  `json:"id"`
	Login string `json:"login"`
	// UserName is Gitea's older name for Login.
	UserName string `json:"username"`
	Name     string `json:"name"`
	// FullName is Gitea's name for Name.
	FullName  string `json:"full_name"`
	Email     string `json:"email"`
	AvatarURL string `json:"avatar_url"`
}

func (u ghUser) user() User {
	return User{Login: cmp.Or(u.Login, u.UserName), Name: cmp.Or(u.Name, u.FullName),
		Email: u.Email, Avatar: u.AvatarURL}
}

type ghRepo struct {
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	FullName      string `json:"full_name"`
	Owner         ghUser `json:"owner"`
	Private       bool   `json:"private"`
	HTMLURL       string `json:"html_url"`
	CloneURL      string `json:"clone_url"`
	SSHURL        string `json:"ssh_url"`
	DefaultBranch string `json:"default_branch"`
}

func (r *ghRepo) repo() Repo {
	ns, name := splitSlug(r.FullName)
	if ns == "" {
		ns, name = r.Owner.user().Login, r.Name
	}
	return Repo{
		Slug:          r.FullName,
		Namespace:     ns,
		Name:          name,
		CloneURL:      r.CloneURL,
		SSHURL:        r.SSHURL,
		Link:          r.HTMLURL,
		DefaultBranch: r.DefaultBranch,
		Private:       r.Private,
	}
}

type ghGitUser struct {
	Name     string `json:"name"`
	Email    string `json:"email"`
	Username string `json:"username"`
}

type ghCommit struct {
	ID       string    `json:"id"`
	Message  string    `json:"message"`
	URL      string    `json:"url"`
	Author   ghGitUser `json:"author"`
	Added    []string  `json:"added"`
	Removed  []string  `json:"removed"`
	Modified []string  `json:"modified"`
}

type ghPush struct {
	Ref     string `json:"ref"`
	Before  string `json:"before"`
	After   string `json:"after"`
	Deleted bool   `json:"deleted"`
	Compare string `json:"compare"`
	// CompareURL is Gitea's name for Compare.
	CompareURL string     `json:"compare_url"`
	HeadCommit *ghCommit  `json:"head_commit"`
	Commits    []ghCommit `json:"commits"`
	// TotalCommits is Gitea's count of the commits pushed.
	TotalCommits int     `json:"total_commits"`
	Repository   *ghRepo `json:"repository"`
	Sender       ghUser  `json:"sender"`
}

type ghBranch struct {
	Ref string `json:"ref"`
	SHA string `json:"sha"`
	// RepoID is Gitea's ID of the branch's repository.
	RepoID int64   `json:"repo_id"`
	Repo   *ghRepo `json:"repo"`
}

type ghPullRequest struct {
	Action      string  `json:"action"`
	Number      int64   `json:"number"`
	Repository  *ghRepo `json:"repository"`
	Sender      ghUser  `json:"sender"`
	PullRequest *struct {
		Number  int64    `json:"number"`
		Title   string   `json:"title"`
		HTMLURL string   `json:"html_url"`
		User    ghUser   `json:"user"`
		Head    ghBranch `json:"head"`
		Base    ghBranch `json:"base"`
	} `json:"pull_request"`
}

func parseGitHub(event string, payload []byte) (*Hook, error) {
	return githubDialect.parse(event, payload)
}

func parseGitea(event string, payload []byte) (*Hook, error) {
	return giteaDialect.parse(event, payload)
}

func (d *ghDialect) parse(event string, payload []byte) (*Hook, error) {
	switch event {
	case "push":
		var p ghPush
		if err := decode(payload, &p); err != nil {
			return nil, err
		}
		return d.push(&p)
	case "pull_request":
		// Gitea names every pull request event (pull_request_sync,
		// pull_request_label, ...) "pull_request" in X-Gitea-Event; the
		// action tells them apart.
		var p ghPullRequest
		if err := decode(payload, &p); err != nil {
			return nil, err
		}
		return d.pullRequest(&p)
	}
	// GitHub's "create" duplicates the push of a tag or branch; "ping",
	// "issues" and the rest build nothing.
	return nil, fmt.Errorf("%w: %s event %q", ErrIgnored, d.name, event)
}

func (d *ghDialect) push(p *ghPush) (*Hook, error) {
	if p.Deleted || isZeroSHA(p.After) {
		return nil, fmt.Errorf("%w: deletion of %s", ErrIgnored, p.Ref)
	}
	if p.Repository == nil {
		return nil, fmt.Errorf("missing field %q", "repository")
	}
	if err := required("ref", p.Ref, "after", p.After, "repository.full_name", p.Repository.FullName); err != nil {
		return nil, err
	}
	event, short, ok := refKind(p.Ref)
	if !ok {
		return nil, fmt.Errorf("%w: push to %s, which is neither a branch nor a tag", ErrIgnored, p.Ref)
	}
	hook := &Hook{
		Event:  event,
		Repo:   p.Repository.repo(),
		Ref:    p.Ref,
		SHA:    p.After,
		Before: p.Before,
		Link:   cmp.Or(p.Compare, p.CompareURL),
		Sender: p.Sender.user(),
	}
	if event == EventPush {
		hook.Branch, hook.SourceBranch = short, short
	}
	head := p.HeadCommit
	if head == nil {
		// Gitea before 1.17 sends no head_commit.
		for i := range p.Commits {
			if p.Commits[i].ID == p.After {
				head = &p.Commits[i]
			}
		}
	}
	if head != nil {
		// For an annotated tag, "after" is the tag object; head_commit is
		// the commit it points to.
		if head.ID != "" {
			hook.SHA = head.ID
		}
		hook.Message = head.Message
		hook.Author = User{Login: head.Author.Username, Name: head.Author.Name, Email: head.Author.Email}
		if hook.Author.Login != "" && strings.EqualFold(hook.Author.Login, hook.Sender.Login) {
			hook.Author.Avatar = p.Sender.AvatarURL
		}
		if hook.Link == "" {
			hook.Link = head.URL
		}
	}
	if event == EventPush && len(p.Commits) > 0 {
		var lists [][]string
		for _, c := range p.Commits {
			lists = append(lists, c.Added, c.Removed, c.Modified)
		}
		hook.ChangedPaths = changedPaths(d.truncated(p), lists...)
	}
	return hook, nil
}

func (d *ghDialect) pullRequest(p *ghPullRequest) (*Hook, error) {
	var action string
	switch p.Action {
	case "opened":
		action = ActionOpened
	case d.synchronize:
		action = ActionSynchronized
	case "reopened":
		action = ActionReopened
	default:
		// closed, edited, labeled, assigned and so on change no code.
		return nil, fmt.Errorf("%w: pull request action %q", ErrIgnored, p.Action)
	}
	if p.Repository == nil {
		return nil, fmt.Errorf("missing field %q", "repository")
	}
	pr := p.PullRequest
	if pr == nil {
		return nil, fmt.Errorf("missing field %q", "pull_request")
	}
	if err := required("repository.full_name", p.Repository.FullName,
		"pull_request.head.sha", pr.Head.SHA, "pull_request.base.ref", pr.Base.Ref); err != nil {
		return nil, err
	}
	number := pr.Number
	if number == 0 {
		number = p.Number
	}
	if number == 0 {
		return nil, fmt.Errorf("missing field %q", "pull_request.number")
	}
	hook := &Hook{
		Event:        EventPullRequest,
		Action:       action,
		Repo:         p.Repository.repo(),
		Ref:          "refs/pull/" + strconv.FormatInt(number, 10) + "/head",
		Branch:       pr.Base.Ref,
		SourceBranch: pr.Head.Ref,
		SHA:          pr.Head.SHA,
		Before:       pr.Base.SHA,
		Message:      pr.Title,
		Link:         pr.HTMLURL,
		Author:       pr.User.user(),
		Sender:       p.Sender.user(),
		PullRequest: PullRequest{
			Number: number,
			Title:  pr.Title,
			Fork:   ghFork(&pr.Head, &pr.Base, p.Repository),
		},
	}
	if pr.Head.Repo != nil {
		hook.PullRequest.SourceRepoCloneURL = pr.Head.Repo.CloneURL
	}
	return hook, nil
}

// ghFork reports whether a pull request's head lives in another
// repository than its base, by ID when both are known, else by name. A
// head repository the forge no longer knows (the fork was deleted) counts
// as a fork.
func ghFork(head, base *ghBranch, repo *ghRepo) bool {
	baseID, baseName := base.RepoID, ""
	if base.Repo != nil {
		if baseID == 0 {
			baseID = base.Repo.ID
		}
		baseName = base.Repo.FullName
	}
	if baseID == 0 {
		baseID = repo.ID
	}
	if baseName == "" {
		baseName = repo.FullName
	}
	headID, headName := head.RepoID, ""
	if head.Repo != nil {
		if headID == 0 {
			headID = head.Repo.ID
		}
		headName = head.Repo.FullName
	}
	switch {
	case headID != 0 && baseID != 0:
		return headID != baseID
	case headName != "":
		return !strings.EqualFold(headName, baseName)
	}
	return true
}
