"""The whole loop through the API, as DESIGN.md specifies it."""

from __future__ import annotations

from server.core.audit import verify_chain


def test_walk_the_whole_flow(as_user, accept, app):
    hotline, county, township, worker = (as_user(n) for n in ("hotline", "county", "township", "worker"))
    t = accept()
    number = t["number"]
    assert t["status"] == "accepted" and t["unit"] == "210000"
    assert t["response_due"] and t["handling_due"]
    assert t["reporter"]["phone"] == "139****5678"

    assert hotline.post(f"/tickets/{number}/dispatch", {"unit": "210102"}).status_code == 200
    assert county.post(f"/tickets/{number}/dispatch", {"unit": "210102001"}).status_code == 200
    r = township.post(f"/tickets/{number}/dispatch", {"grid": "G-HHW-01"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["assignee"] == "worker"
    assert worker.post(f"/tickets/{number}/sign").get_json()["status"] == "in_progress"
    r = worker.post(f"/tickets/{number}/check-in", {"lng": 123.4306, "lat": 41.7421,
                                                     "accuracy_m": 8, "fix_age_s": 3})
    assert r.get_json()["status"] == "on_site", r.get_json()
    r = worker.post(f"/tickets/{number}/reply", {"result": "已修好", "resolution": "resolved"})
    assert r.get_json()["status"] == "replied"
    r = township.post(f"/tickets/{number}/approve")
    assert r.get_json()["status"] == "closed", r.get_json()
    r = hotline.post(f"/tickets/{number}/follow-up", {"reached": True, "satisfaction": "unsatisfied",
                                                       "comment": "灯又坏了"})
    assert r.status_code == 200
    r = hotline.post(f"/tickets/{number}/reopen", {"reason": "市民反映仍未修好"})
    body = r.get_json()
    assert body["status"] == "assigned" and body["assignee"] == "worker" and body["reopen_count"] == 1

    events = hotline.get(f"/tickets/{number}/events").get_json()["items"]
    assert [e["kind"] for e in events] == [
        "accept", "dispatch", "dispatch", "dispatch", "sign", "check_in", "reply", "approve",
        "follow_up", "reopen"]
    assert body["version"] == len(events)
    with app.app_context():
        assert list(verify_chain()) == []
