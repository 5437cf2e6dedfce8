"""Smart routing (issue 6): text, taxonomy, urgency, duplicates, accept integration,
corrections, emergency hand-offs and learning from the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from routing import text as tx
from routing import urgency
from routing.classifier import keyword_guess
from routing.duplicates import Fingerprint, is_duplicate, text_similarity
from routing.taxonomy import default_taxonomy, parse_rows

# ---------------------------------------------------------------- the shared text module


def test_normalize_folds_full_width_and_masks_numbers() -> None:
    out = tx.normalize("ＡＢＣ小区１２号楼，电话13912345678，身份证210102199001011234")
    assert "abc小区" in out
    assert "13912345678" not in out and tx.PHONE in out
    assert "210102199001011234" not in out and tx.IDNO in out
    assert "12" not in out and tx.NUM in out
    assert "，" not in out  # full-width comma folded to ","


def test_user_dictionary_keeps_place_names_whole() -> None:
    tx.add_words(["浑河湾社区", "拖欠工资"])
    words = tx.words("浑河湾社区有人拖欠工资")
    assert "浑河湾社区" in words and "拖欠工资" in words


# ---------------------------------------------------------------- taxonomy


def test_taxonomy_is_a_tree_with_rules() -> None:
    tax = default_taxonomy()
    assert len(tax.level1()) >= 7
    for code, cat in tax.categories.items():
        assert cat.keywords, code
        if cat.parent_code:
            assert cat.parent_code in tax.categories
    # level 1 maps by name onto the message-board classes the benchmark uses
    for name in ("城乡建设", "环境保护", "交通运输", "商贸旅游", "卫生计生", "劳动和社会保障", "教育文体"):
        assert tax.by_name(name) is not None and tax.by_name(name).level == 1
    assert tax.get("0101").goes_to_grid and tax.get("0603").route == "county"


def test_taxonomy_refuses_a_broken_file() -> None:
    with pytest.raises(ValueError):
        parse_rows([{"code": "0101", "name": "孤儿", "route": "grid", "keywords": "x"}])
    with pytest.raises(ValueError):
        parse_rows([{"code": "01", "name": "a", "route": "moon", "keywords": "x"}])


# ---------------------------------------------------------------- cold start


@pytest.mark.parametrize("title,content,level1,route", [
    ("小区门口路灯不亮", "浑河湾社区南门路灯连续一周不亮，晚上出行不安全。", "01", "grid"),
    ("养老金迟迟没有发放", "我母亲退休三个月了养老金还没有到账，社保局说在核算。", "06", "county"),
    ("学校乱收补课费", "孩子所在学校老师组织补课，每人收取补课费八百元。", "07", "county"),
    ("化工厂夜里偷排废气", "工业园区化工厂每天夜里排放刺鼻废气，臭味很大。", "02", None),
])
def test_keywords_alone_route_before_any_history(title: str, content: str, level1: str,
                                                 route: str | None) -> None:
    guess = keyword_guess(title, content)
    assert guess.level1 == level1
    assert guess.source == "keywords" and guess.words
    assert 0 < guess.confidence <= 1
    if route:
        assert guess.route == route


def test_keywords_go_deeper_only_when_confident() -> None:
    assert keyword_guess("路灯不亮", "小区路灯坏了不亮").code == "010101"
    vague = keyword_guess("城市建设问题", "希望加强城市建设")
    assert vague.code == "01" and vague.level1 == "01"


# ---------------------------------------------------------------- urgency


@pytest.mark.parametrize("text,level,service", [
    ("3单元楼道里闻到很浓的煤气味", "emergency", "119"),
    ("幸福路口两车相撞，有人受伤流血", "emergency", "120"),
    ("楼下有人持刀打架", "emergency", "110"),
    ("仓库着火了，浓烟很大", "emergency", "119"),
    ("路口发生车祸，车辆侧翻", "emergency", "122"),
    ("没有人受伤，只是路灯坏了", "normal", None),
    ("去年在工地受伤，工地拒绝支付医疗费", "normal", None),
    ("学校门口容易发生交通事故，建议修天桥", "normal", None),
    ("小区停水两天了", "urgent", None),
])
def test_urgency(text: str, level: str, service: str | None) -> None:
    verdict = urgency.assess("", text)
    assert verdict.level == level, verdict
    if service:
        assert service in verdict.services and verdict.signals


def test_urgency_never_lowers_an_operators_choice() -> None:
    assert urgency.raise_only("emergency", "normal") == "emergency"
    assert urgency.raise_only("normal", "urgent") == "urgent"


# ---------------------------------------------------------------- duplicates


def test_text_similarity_and_the_rule() -> None:
    a = Fingerprint.of("路灯不亮", "浑河湾社区南门路灯连续一周不亮")
    b = Fingerprint.of("南门路灯坏了", "浑河湾社区南门的路灯一直不亮，晚上很黑")
    c = Fingerprint.of("噪音扰民", "楼上装修噪音太大，晚上十点还在施工")
    assert text_similarity(a, b) > text_similarity(a, c)
    assert is_duplicate(text_similarity(a, b), 40.0)
    assert not is_duplicate(text_similarity(a, c), 40.0)
    assert not is_duplicate(text_similarity(a, b), 5000.0)  # same words, far apart
    assert not is_duplicate(text_similarity(a, b), None)  # no place to compare


# ---------------------------------------------------------------- accept integration


def test_accept_routes_a_grid_problem_with_category_and_explanation(accept: Any) -> None:
    t = accept()
    assert t["category_code"].startswith("0101")
    assert t["category_source"] == "keywords"
    assert 0 < t["category_confidence"] <= 1
    assert t["category_label"].startswith("城乡建设 / 市政设施")
    assert t["category_explanation"]["source"] == "keywords"
    assert "路灯" in t["category_explanation"]["words"]
    assert t["status"] == "accepted" and t["unit"] == "210000"  # goes down as before


def test_a_county_category_stops_at_the_county(accept: Any, as_user: Any) -> None:
    t = accept(title="养老金三个月没发", content="我父亲退休后养老金三个月没有到账，社保缴费记录也查不到。")
    assert t["category_code"].startswith("06")
    assert t["grid"] is None and "不下沉网格" in t["grid_reason"]
    assert t["unit"] == "210102" and t["status"] == "assigned"
    events = as_user("hotline").get(f"/tickets/{t['number']}/events").get_json()["items"]
    routing = events[0]["data"]["routing"]
    assert routing["route"] == "county" and routing["stopped_at"] == "210102"


def test_a_patrol_report_for_the_county_goes_up_to_it(accept: Any) -> None:
    t = accept(by="worker", source="patrol", type="report", title="工地拖欠农民工工资",
               content="巡查发现工地老板拖欠农民工工资三个月，工人聚集讨薪。")
    assert t["category_code"].startswith("06")
    assert t["unit"] == "210102" and t["status"] == "assigned" and t["grid"] is None
    assert t["assignee"] is None  # not auto-dispatched back to the reporting worker


def test_station_staff_correct_tickets_in_their_township(walk: Any, as_user: Any) -> None:
    number = walk("assigned")
    r = as_user("township").post(f"/tickets/{number}/category", {"category_code": "0102"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["category_source"] == "correction"
    other = as_user("township3").post(f"/tickets/{number}/category", {"category_code": "0103"})
    assert other.status_code == 404  # another township's station does not even see it


def test_operator_category_and_urgency_are_kept(accept: Any) -> None:
    t = accept(category_code="0603", urgency="urgent")
    assert t["category_code"] == "0603" and t["category_source"] == "operator"
    assert t["category_confidence"] == 1.0
    assert t["urgency"] == "urgent"  # keywords say normal: never lowered
    assert t["category_explanation"]["suggested"].startswith("0101")


def test_an_emergency_is_raised_and_its_hand_off_recorded(accept: Any, as_user: Any) -> None:
    t = accept(title="楼道煤气泄漏", content="3单元楼道里闻到很浓的煤气味，请马上处理", urgency="normal")
    assert t["urgency"] == "emergency" and t["emergency_services"] == ["119"]
    hotline = as_user("hotline")
    items = hotline.get(f"/tickets/{t['number']}/emergency-handoffs").get_json()["items"]
    assert items[0]["status"] == "pending" and items[0]["detected"]
    r = hotline.post(f"/tickets/{t['number']}/emergency-handoff",
                     {"service": "119", "reference": "JQ-2026-001", "note": "已转119"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["event"]["kind"] == "emergency_handoff"
    items = hotline.get(f"/tickets/{t['number']}/emergency-handoffs").get_json()["items"]
    assert items[0]["status"] == "handed_off" and items[0]["reference"] == "JQ-2026-001"
    assert hotline.post(f"/tickets/{t['number']}/emergency-handoff",
                        {"service": "999"}).status_code == 422
    assert as_user("worker").post(f"/tickets/{t['number']}/emergency-handoff",
                                  {"service": "110"}).status_code in (403, 404)


def test_duplicates_are_proposed_counted_merged_and_dismissed(accept: Any, as_user: Any) -> None:
    first = accept()
    second = accept(title="南门路灯一直不亮",
                    content="和平区浑河湾社区南门的路灯一周都不亮了，晚上很黑。")
    assert second["duplicate_count"] == 1 and second["duplicate_label"] == "另有1条相同反映"
    far = accept(location={"lng": 123.60, "lat": 41.90, "crs": "wgs84"}, address=None)
    assert far["duplicate_count"] == 0  # same words, far away
    hotline = as_user("hotline")
    assert hotline.get(f"/tickets/{first['number']}").get_json()["duplicate_count"] == 2 - 1
    items = hotline.get(f"/tickets/{second['number']}/duplicates").get_json()["items"]
    assert [i["number"] for i in items] == [first["number"]]
    assert items[0]["link_status"] == "proposed"
    # the older one cannot be merged into the newer
    r = hotline.post(f"/tickets/{first['number']}/duplicates/{second['number']}/merge")
    assert r.status_code == 422 and r.get_json()["code"] == "merge_from_newer"
    r = hotline.post(f"/tickets/{second['number']}/duplicates/{first['number']}/merge")
    assert r.status_code == 200, r.get_json()
    merged = r.get_json()
    assert merged["status"] == "closed" and merged["duplicate_of"] == first["number"]
    r = hotline.post(f"/tickets/{second['number']}/duplicates/{first['number']}/dismiss")
    assert r.status_code == 409
    assert hotline.post(f"/tickets/{second['number']}/duplicates/{far['number']}/link"
                        ).status_code == 404
    assert hotline.post(f"/tickets/{second['number']}/duplicates/{first['number']}/explode"
                        ).status_code in (404, 409)


def test_dismissing_a_proposal_takes_it_out_of_the_count(accept: Any, as_user: Any) -> None:
    first = accept()
    second = accept()
    hotline = as_user("hotline")
    r = hotline.post(f"/tickets/{second['number']}/duplicates/{first['number']}/dismiss")
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["duplicate_count"] == 0
    assert hotline.get(f"/tickets/{first['number']}").get_json()["duplicate_count"] == 0


# ---------------------------------------------------------------- corrections


def test_station_staff_correct_a_category(accept: Any, as_user: Any) -> None:
    t = accept()
    number = t["number"]
    assert as_user("worker").post(f"/tickets/{number}/category",
                                  {"category_code": "0102"}).status_code in (403, 404)
    r = as_user("hotline").post(f"/tickets/{number}/category", {"category_code": "9999"})
    assert r.status_code == 422 and r.get_json()["code"] == "unknown_category"
    r = as_user("hotline").post(f"/tickets/{number}/category",
                                {"category_code": "0102", "note": "其实是环境卫生"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["category_code"] == "0102" and body["category_source"] == "correction"
    assert body["event"]["kind"] == "correct_category"
    assert body["event"]["data"]["from"]["code"] == t["category_code"]
    again = as_user("hotline").post(f"/tickets/{number}/category", {"category_code": "0102"})
    assert again.status_code == 409


def test_categories_and_preview(as_user: Any) -> None:
    hotline = as_user("hotline")
    items = hotline.get("/categories").get_json()["items"]
    assert {"code": "01", "name": "城乡建设"}.items() <= items[0].items()
    r = hotline.post("/routing/preview", {"title": "", "content": "楼下有人持刀打架"})
    assert r.status_code == 200 and r.get_json()["urgency"] == "emergency"
    assert hotline.post("/routing/preview", {"title": 1}).status_code == 422
    assert as_user("worker").post("/routing/preview", {"content": "x"}).status_code == 403


# ---------------------------------------------------------------- learning


BIKES = ["共享单车乱停放堵住人行道", "共享单车堆满小区门口", "地铁口共享单车太多没法走",
         "共享单车倒了一地没人管", "小区外共享单车占道", "共享单车挡住盲道",
         "学校门口共享单车乱停", "公交站旁共享单车成堆", "菜市场门口共享单车乱放",
         "医院门口共享单车堵路", "商场门口共享单车占满", "共享单车停在消防通道"]
LAMPS = ["路灯不亮好几天", "小区路灯坏了", "街道路灯晚上不亮", "路灯杆倒了",
         "公园路灯一直不亮", "路灯闪烁不停", "桥上路灯不亮", "学校旁路灯坏了",
         "胡同里路灯不亮", "广场路灯全黑", "路灯白天亮晚上不亮", "新修道路没有路灯"]
WAGES = ["工地老板拖欠工资半年", "餐馆拖欠员工工资", "装修公司欠薪不给", "物流公司拖欠三个月工资",
         "农民工工资被包工头拖欠", "公司倒闭工资没发", "厂里拖欠加班费", "保安公司欠薪",
         "超市拖欠工资不结算", "驾校拖欠教练工资", "酒店拖欠服务员工资", "快递站拖欠工资"]


def _train(app: Any, **kwargs: Any) -> Any:
    from routing.training import train_from_database
    from server.core.db import db

    with app.app_context():
        report = train_from_database(Path(app.config["YIHAO_HOME"]), **kwargs)
        db.session.commit()
        return report


def test_training_needs_history_then_learns_and_corrections_change_the_next_model(
        app: Any, accept: Any, as_user: Any) -> None:
    report = _train(app)
    assert report.version is None and "taxonomy" in report.decision

    far = {"lng": 123.50, "lat": 41.80, "crs": "wgs84"}
    bikes = []
    for i, text in enumerate(BIKES):
        # spread out so they are not proposed as duplicates of each other
        loc = {**far, "lng": far["lng"] + i * 0.02}
        bikes.append(accept(title=text, content=f"{text}，请相关部门处理。", category_code="03",
                            location=loc, address=None)["number"])
    for i, text in enumerate(LAMPS):
        loc = {**far, "lat": far["lat"] + i * 0.02}
        accept(title=text, content=f"{text}，请尽快维修。", category_code="0101", location=loc,
               address=None)
    for i, text in enumerate(WAGES):
        loc = {**far, "lat": far["lat"] - i * 0.02}
        accept(title=text, content=f"{text}，希望帮忙讨薪。", category_code="0601", location=loc,
               address=None)
    report = _train(app)
    assert report.version == 1 and report.activated, report.decision
    assert report.metrics["new"]["macro_f1"] > report.metrics["keywords"]["macro_f1"]
    probe = {"title": "共享单车乱停", "content": "超市门口共享单车乱停，请处理。",
             "location": {**far, "lat": 40.0}, "address": None}
    t = accept(**probe)
    assert t["category_code"] == "03" and t["category_source"] == "model"
    assert t["category_explanation"]["model_version"] == 1
    assert t["category_explanation"]["similar"]  # past tickets that look alike

    # Station staff say bicycles are city management's (城管执法), not transport's.
    for number in bikes:
        r = as_user("hotline").post(f"/tickets/{number}/category", {"category_code": "0103"})
        assert r.status_code == 200, r.get_json()
    report = _train(app)
    assert report.version == 2 and report.activated, report.decision
    assert report.metrics["active"]["version"] == 1
    assert report.metrics["new"]["macro_f1"] > report.metrics["active"]["macro_f1"]
    t = accept(**{**probe, "location": {**far, "lat": 39.0}})
    assert t["category_code"].startswith("01") and t["category_explanation"]["model_version"] == 2

    # Nothing new: the next model is not better, so it does not replace the active one.
    report = _train(app)
    assert report.version == 3 and not report.activated
    models = as_user("hotline").get("/routing/models").get_json()["items"]
    assert [(m["version"], m["active"]) for m in models] == [(3, False), (2, True), (1, False)]


def test_a_tampered_model_file_is_not_loaded(app: Any, accept: Any) -> None:
    import sqlalchemy as sa

    from routing.models import RoutingModel
    from routing.service import active_model, forget_model
    from server.core.db import db

    for i, text in enumerate(BIKES[:10] + LAMPS[:10]):
        accept(title=text, content=text, category_code="03" if i < 10 else "0101",
               location={"lng": 123.5 + i * 0.02, "lat": 41.8, "crs": "wgs84"}, address=None)
    assert _train(app, force=True).activated
    with app.app_context():
        row = db.session.execute(sa.select(RoutingModel)).scalar_one()
        Path(row.path).write_bytes(Path(row.path).read_bytes() + b"x")
        forget_model()
        assert active_model() is None  # falls back to the taxonomy keywords
    t = accept(title="路灯不亮", content="路灯不亮")
    assert t["category_source"] == "keywords"


# ---------------------------------------------------------------- the trained model's maths


def _toy_model(n_classes: int) -> Any:
    from routing.classifier import train

    groups = [("03", BIKES), ("01", LAMPS), ("06", WAGES)][:n_classes]
    items = [(t, f"{t}，请相关部门处理。") for _, texts in groups for t in texts]
    labels = [code for code, texts in groups for _ in texts]
    return train(items, labels, refs=[f"T{i}" for i in range(len(items))])


PROBES = [("路灯一直不亮", "我家楼下路灯一直不亮"), ("拖欠工资", "老板拖欠我们三个月工资"),
          ("共享单车", "门口共享单车乱停"), ("其他问题", "说不清是什么问题")]


@pytest.mark.parametrize("n_classes", [2, 3])
def test_model_averages_svm_and_naive_bayes_and_the_accept_path_agrees(n_classes: int) -> None:
    import numpy as np

    from routing.classifier import MIN_FOR_TEMPERATURE, to_doc

    model = _toy_model(n_classes)
    assert model.nb is not None and model.nb_platt is not None
    docs = [to_doc(t, c) for t, c in PROBES]
    batch = model.proba(docs)  # through scikit-learn
    for i, doc in enumerate(docs):
        fast = model._proba_row(model.features([doc]))  # plain numpy, the accept path
        assert np.allclose(fast, batch[i], atol=1e-6)
        assert fast.sum() == pytest.approx(1.0)
    # The naive Bayes half counts: the ensemble is not the SVM alone.
    assert not np.allclose(batch, model.clf.predict_proba(model.features(docs)), atol=1e-3)
    if 12 * n_classes >= MIN_FOR_TEMPERATURE:
        assert 0.3 <= model.temperature <= 3.0 and model.temperature != 1.0
    else:
        assert model.temperature == 1.0  # too few examples to estimate it
    assert model.guess(*PROBES[0]).level1 == "01"
    if n_classes == 3:
        assert model.guess(*PROBES[1]).level1 == "06"


def test_a_model_file_from_before_naive_bayes_predicts_as_it_was_trained() -> None:
    """Files pickled before the naive Bayes half existed lack its attributes: they load and
    predict with the calibrated SVM alone, so an upgrade never needs a retrain."""
    import pickle

    import numpy as np

    from routing.classifier import CategoryModel, to_doc

    state = _toy_model(3).__getstate__()
    for name in ("nb", "nb_platt", "temperature"):
        state.pop(name)
    old = CategoryModel.__new__(CategoryModel)
    old.__dict__.update(state)
    old = pickle.loads(pickle.dumps(old))
    doc = to_doc(*PROBES[0])
    row = old.features([doc])
    svm = old.clf.predict_proba(row)[0]
    assert np.allclose(old._proba_row(row), svm, atol=1e-6)
    assert np.allclose(old.proba([doc])[0], svm)
    guess = old.guess(*PROBES[0])
    assert guess.level1 == "01" and guess.confidence == pytest.approx(svm.max(), abs=1e-3)


def test_temperature_sharpens_without_changing_the_winner_and_is_fitted_by_likelihood() -> None:
    import numpy as np

    from routing.classifier import fit_temperature, sharpen

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, 600)
    scores = rng.normal(size=(600, 5))
    scores[np.arange(600), truth] += 2.5
    # Unit-variance scores shifted by 2.5 for the true class: its posterior is softmax(2.5 s).
    honest = np.exp(2.5 * scores) / np.exp(2.5 * scores).sum(axis=1, keepdims=True)
    timid = sharpen(honest, 2.0)  # what one-vs-rest sigmoids renormalised look like
    assert np.allclose(timid.sum(axis=1), 1.0)
    assert (timid.argmax(axis=1) == honest.argmax(axis=1)).all()
    assert timid.max(axis=1).mean() < honest.max(axis=1).mean()
    t = fit_temperature(timid, truth)
    assert 0.4 < t < 0.6  # recovers the honest probabilities (t ≈ 1/2)
    assert fit_temperature(sharpen(honest, 0.5), truth) > 1.5  # and tempers overconfidence
    always_right = np.full((600, 5), 0.1)
    always_right[np.arange(600), truth] = 0.6
    # Never certain, however lucky the folds: the bound holds.
    assert fit_temperature(always_right, truth) == pytest.approx(0.3, abs=0.01)
