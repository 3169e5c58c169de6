"""Editorial rules (pin, never, keep, dates, subjects) one by one on small sites."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from recommender import Recommender
from recommender.errors import ConfigError
from recommender.rules import EditorialRules, Keep, Never, Pin, subject_fold

from .test_model import topic_pages, write_site

N_LINKS = 4


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """18 pages, 6 per topic; subjects cut across topics (Even and Odd by number)."""
    site = topic_pages()
    for page in site:
        page["subject"] = "Even" if int(page["slug"].rsplit("-", 1)[1]) % 2 == 0 else "Odd"
    return write_site(tmp_path_factory.mktemp("site"), site)


def fit(pages, rules=None, **params):
    model = Recommender(min_df=1, max_df=1.0, n_links=N_LINKS, rules=rules, **params)
    return model.fit(pages)


def links_of(related, source):
    return related.loc[related["source_url"] == source, "target_url"].tolist()


def test_rules_are_a_plain_parameter(pages):
    rules = EditorialRules(pins=(Pin("/topics/cells-0", "/topics/trade-3", 2, line=1),))
    model = Recommender(rules=rules)
    assert model.get_params()["rules"] is rules and not hasattr(model, "related_")
    assert clone(model).get_params()["rules"] == rules
    assert pickle.loads(pickle.dumps(rules)) == rules
    with pytest.raises(ConfigError, match="'rules' parameter"):
        Recommender(rules="related-rules.toml").fit(pages)


@pytest.mark.parametrize("coverage", [True, False])
def test_a_pin_is_placed_at_its_rank_and_counts_toward_n_links(pages, coverage):
    source, target = "/topics/cells-0", "/topics/trade-3"
    assert target not in links_of(fit(pages, coverage=coverage).related_, source)
    rules = EditorialRules(pins=(Pin(source, target, rank=2, line=7),))
    related = fit(pages, rules, coverage=coverage).related_
    assert links_of(related, source)[1] == target
    assert len(links_of(related, source)) == N_LINKS
    assert (related.groupby("source_url").size() == N_LINKS).all()


def test_pins_without_a_rank_go_first_and_push_out_the_weakest(pages):
    source = "/topics/cells-0"
    plain = links_of(fit(pages).related_, source)
    rules = EditorialRules(pins=(Pin(source, "/topics/stars-1"), Pin(source, "/topics/stars-2")))
    pinned = links_of(fit(pages, rules).related_, source)
    assert pinned == ["/topics/stars-1", "/topics/stars-2", *plain[: N_LINKS - 2]]


def test_a_pin_to_a_page_already_chosen_is_not_repeated(pages):
    source = "/topics/cells-0"
    plain = links_of(fit(pages).related_, source)
    rules = EditorialRules(pins=(Pin(source, plain[2], rank=1),))
    assert links_of(fit(pages, rules).related_, source) == [plain[2], *plain[:2], plain[3]]


def test_a_never_rule_forbids_links_from_a_subject_to_a_glob(pages):
    def crossing(related):
        odd = related["source_url"].map(pages["subject_key"]) == "odd"
        return int((odd & related["target_url"].str.startswith("/topics/cells")).sum())

    assert crossing(fit(pages).related_) > 0
    rules = EditorialRules(nevers=(Never("subject:  ODD ", "/topics/cells-*"),))
    related = fit(pages, rules).related_
    assert crossing(related) == 0
    assert (related.groupby("source_url").size() == N_LINKS).all()


@pytest.mark.parametrize(
    ("never", "forbidden"),
    [
        (Never(target="topics/stars-[0-2].md"), lambda r: r["target_url"].isin(STARS_0_2)),
        (Never(source="/topics/stars-*"), lambda r: r["source_url"].str.startswith("/topics/st")),
    ],
)
def test_a_never_rule_with_one_side_left_out(pages, never, forbidden):
    assert forbidden(fit(pages).related_).any()
    assert not forbidden(fit(pages, EditorialRules(nevers=(never,))).related_).any()


STARS_0_2 = ["/topics/stars-0", "/topics/stars-1", "/topics/stars-2"]


def test_kept_pages_hold_their_current_links_and_stay_targets(pages):
    source = "/topics/cells-0"
    current = ["/topics/trade-1", "/nowhere", "/topics/stars-4"]
    held = pages.assign(related_urls=pages["related_urls"].where(pages.index != source, [current]))
    plain = fit(held)
    model = fit(held, EditorialRules(keeps=(Keep("/topics/cells-0", line=3),)))
    assert links_of(model.related_, source) == ["/topics/trade-1", "/topics/stars-4"]
    assert list(model.kept_urls_) == [source]
    assert source in set(model.related_["target_url"])
    others = model.related_[model.related_["source_url"] != source]
    assert (others.groupby("source_url").size() == N_LINKS).all()
    assert links_of(plain.related_, source) != links_of(model.related_, source)


def test_no_newer_never_links_to_a_later_page(pages):
    dated = pages.assign(date=pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(18), "D"))

    def newer(related):
        return (
            related["target_url"].map(dated["date"]) > related["source_url"].map(dated["date"])
        ).sum()

    assert newer(fit(dated).related_) > 0
    related = fit(dated, EditorialRules(no_newer=True)).related_
    assert newer(related) == 0


def test_a_half_life_prefers_recent_pages(pages):
    dated = pages.assign(
        date=pd.Timestamp("2024-01-01") - pd.to_timedelta(np.arange(18) * 400, "D")
    )
    age = dated["date"].max() - dated["date"]

    def mean_age(related):
        return related["target_url"].map(age).mean()

    decayed = fit(dated, EditorialRules(half_life_days=365)).related_
    assert mean_age(decayed) < mean_age(fit(dated).related_)
    assert (decayed.groupby("source_url").size() == N_LINKS).all()


def same_subject(related, pages):
    subjects = pages["subject_key"]
    same = related["source_url"].map(subjects) == related["target_url"].map(subjects)
    return same.groupby(related["source_url"]).sum()


def test_min_same_keeps_links_within_the_subject(pages):
    assert same_subject(fit(pages).related_, pages).min() < 3
    related = fit(pages, EditorialRules(min_same=3)).related_
    assert same_subject(related, pages).min() >= 3
    assert (related.groupby("source_url").size() == N_LINKS).all()


def test_cross_min_score_allows_only_strong_links_across_subjects(pages):
    plain = fit(pages).related_
    threshold = plain["score"].median()
    cross = plain["source_url"].map(pages["subject_key"]) != plain["target_url"].map(
        pages["subject_key"]
    )
    assert (plain.loc[cross, "score"] <= threshold).any()
    related = fit(pages, EditorialRules(cross_min_score=threshold)).related_
    cross = related["source_url"].map(pages["subject_key"]) != related["target_url"].map(
        pages["subject_key"]
    )
    assert (related.loc[cross, "score"] > threshold).all()


def test_explain_rules_names_the_rule_and_its_line(pages):
    rules = EditorialRules(
        pins=(Pin("/topics/cells-0", "/topics/trade-3", 1, line=4),),
        nevers=(Never("/topics/cells-0", "/topics/cells-1", line=9),),
        file="rules.toml",
    )
    model = fit(pages, rules)
    events = model.explain_rules("/topics/cells-0")
    placed = events[events["action"] == "placed"]
    assert placed[["target_url", "rule"]].values.tolist() == [
        ["/topics/trade-3", "rules.toml:4: [[pin]]"]
    ]
    removed = model.explain_rules("/topics/cells-0", "/topics/cells-1")
    assert removed["rule"].tolist() == ["rules.toml:9: [[never]]"]
    assert fit(pages).explain_rules("/topics/cells-0").empty


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            EditorialRules(pins=(Pin("/topics/nowhere", "/topics/cells-1", line=3),)),
            r"rules:3: \[\[pin\]\]: source '/topics/nowhere' names no page",
        ),
        (
            EditorialRules(keeps=(Keep("subject:Nothing", line=5),)),
            r"rules:5: \[\[keep\]\]: source 'subject:Nothing' names no page",
        ),
        (
            EditorialRules(
                pins=(Pin("/topics/cells-0", "/topics/trade-1", line=2),),
                nevers=(Never("subject:even", "/topics/trade-*", line=6),),
            ),
            r"rules:2: \[\[pin\]\]: forbidden by rules:6: \[\[never\]\]",
        ),
        (
            EditorialRules(
                pins=tuple(Pin("/topics/cells-0", f"/topics/trade-{i}", line=i) for i in range(5))
            ),
            r"rules:4: \[\[pin\]\]: pins more than n_links \(4\) pages on '/topics/cells-0'",
        ),
        (
            EditorialRules(pins=(Pin("/topics/cells-0", "/topics/trade-*", line=8),)),
            r"rules:8: \[\[pin\]\]: target '/topics/trade-\*' names 6 pages, not one",
        ),
        (
            EditorialRules(pins=(Pin("/topics/cells-0", "/topics/cells-0", line=1),)),
            "would link to itself",
        ),
        (
            EditorialRules(pins=(Pin("/topics/cells-0", "/topics/cells-1", rank=5, line=1),)),
            r"rank 5 is beyond n_links \(4\)",
        ),
        (
            EditorialRules(
                pins=(Pin("/topics/cells-0", "/topics/cells-1", line=1),),
                keeps=(Keep("/topics/cells-*", line=2),),
            ),
            r"rules:1: \[\[pin\]\]: '/topics/cells-0' is kept as it is by rules:2: \[\[keep\]\]",
        ),
    ],
)
def test_rules_that_cannot_be_applied_name_the_rule_and_line(pages, rules, message):
    with pytest.raises(ConfigError, match=message):
        fit(pages, rules)


def test_a_pin_to_a_no_index_page_is_refused(tmp_path):
    site = topic_pages()
    site[3]["no_index"] = True
    frame = write_site(tmp_path, site)
    rules = EditorialRules(pins=(Pin("/topics/cells-0", "/topics/cells-3", line=2),))
    with pytest.raises(ConfigError, match=r"rules:2: \[\[pin\]\]: .* is a no_index page"):
        fit(frame, rules)


def test_a_pin_on_a_page_short_of_links_leaves_no_gap(pages):
    source = "/topics/cells-0"
    rules = EditorialRules(
        pins=(Pin(source, "/topics/trade-3", rank=4),),
        nevers=(
            Never(source, "/topics/stars-*"),
            Never(source, "/topics/trade-[0-2]"),
            Never(source, "/topics/cells-*"),
        ),
    )
    related = fit(pages, rules).related_
    mine = related[related["source_url"] == source]
    assert 1 < len(mine) < N_LINKS
    assert mine["target_url"].iloc[-1] == "/topics/trade-3"
    assert mine["rank"].tolist() == list(range(1, len(mine) + 1))


# ---------------------------------------------------------------- from mutation testing


def assert_scores_are_cosines(model):
    """Every link's score is its pair's cosine, whatever the rules moved."""
    rows = model.urls_.get_indexer(model.related_["source_url"])
    cols = model.urls_.get_indexer(model.related_["target_url"])
    cosines = np.asarray(model.features_[rows].multiply(model.features_[cols]).sum(axis=1))
    np.testing.assert_allclose(model.related_["score"], cosines.ravel(), rtol=1e-5, atol=1e-6)


def test_the_page_sorted_first_can_be_pinned_and_keeps_its_place(pages):
    first = pages.index[0]  # page 0 of every array: no rule may take it for padding
    assert first == "/topics/cells-0"
    assert first in links_of(fit(pages).related_, "/topics/cells-4")
    rules = EditorialRules(
        pins=(
            Pin("/topics/trade-3", first, rank=1),
            Pin("/topics/trade-3", "/topics/stars-0"),  # unranked: the first free place
            Pin("/topics/trade-4", first),
            Pin("/topics/cells-4", "/topics/trade-0", rank=4, line=7),
        )
    )
    model = fit(pages, rules)
    assert links_of(model.related_, "/topics/trade-3")[:2] == [first, "/topics/stars-0"]
    assert links_of(model.related_, "/topics/trade-4")[0] == first
    assert first in links_of(model.related_, "/topics/cells-4")  # a link to page 0 stays
    made_room = model.explain_rules("/topics/cells-4")
    assert sorted(map(tuple, made_room[["action", "rule"]].drop_duplicates().values)) == [
        ("placed", "rules:7: [[pin]]"),
        ("removed", "rules:7: [[pin]] made room"),
    ]
    assert (model.related_.groupby("source_url").size() == N_LINKS).all()
    assert_scores_are_cosines(model)


def test_the_automatic_rules_name_their_section_and_its_line(pages):
    dated = pages.assign(date=pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(18), "D"))
    settings = {"no_newer": True, "cross_min_score": 0.5, "min_same": 3}
    lines = (("dates", 3), ("subjects", 7))
    model = fit(dated, EditorialRules(**settings, file="r.toml", section_lines=lines))
    events = model.rule_events_
    assert set(events["action"]) == {"removed"}
    assert set(events["rule"]) == {
        "r.toml:3: [dates] no_newer",
        "r.toml:7: [subjects] cross_min_score",
        "r.toml:7: [subjects] min_same",
    }
    unplaced = fit(dated, EditorialRules(no_newer=True, file="r.toml")).rule_events_
    assert set(unplaced["rule"]) == {"r.toml: [dates] no_newer"}  # a section without a line
    assert_scores_are_cosines(model)


def test_a_page_two_keep_rules_name_is_kept_by_the_first(pages):
    held = pages.assign(related_urls=[["/topics/trade-1"]] * len(pages))  # a kept page's
    rules = EditorialRules(  # links are its events
        keeps=(Keep("/topics/cells-1", line=3), Keep("/topics/cells-*", line=5)), file="k"
    )
    model = fit(held, rules)
    placed = model.rule_events_[model.rule_events_["action"] == "placed"]
    by_source = placed.groupby("source_url", observed=True)["rule"].agg(set)
    assert by_source["/topics/cells-1"] == {"k:3: [[keep]]"}
    assert by_source["/topics/cells-2"] == {"k:5: [[keep]]"}
    assert set(model.kept_urls_) == {f"/topics/cells-{i}" for i in range(6)}


@pytest.mark.parametrize(
    ("pins", "message"),
    [
        (
            (
                Pin("/topics/cells-0", "/topics/trade-1", 1, line=2),
                Pin("/topics/cells-0", "/topics/trade-2", 1, line=3),
            ),
            "rules:3: [[pin]]: pins a second page at rank 1 of '/topics/cells-0'",
        ),
        (
            (
                Pin("/topics/cells-0", "/topics/trade-1", 3, line=2),
                Pin("/topics/cells-0", "/topics/trade-2", 3, line=4),
            ),
            "rules:4: [[pin]]: pins a second page at rank 3 of '/topics/cells-0'",
        ),
        (
            (
                Pin("/topics/cells-0", "/topics/trade-1", line=2),
                Pin("/topics/cells-*", "/topics/trade-1", line=6),
            ),
            "rules:6: [[pin]]: pins '/topics/trade-1' on '/topics/cells-0' a second time",
        ),
    ],
)
def test_pins_that_clash_are_refused_with_the_page_and_rank(pages, pins, message):
    with pytest.raises(ConfigError) as error:
        fit(pages, EditorialRules(pins=pins))
    assert str(error.value) == message


def test_with_pages_unloaded_a_pin_naming_none_is_left_out_and_the_next_applies(pages):
    rules = EditorialRules(
        pins=(
            Pin("/topics/cells-0", "/topics/gone", rank=1),
            Pin("/topics/cells-0", "/topics/trade-2", rank=2),
        ),
        unloaded=1,
    )
    assert links_of(fit(pages, rules).related_, "/topics/cells-0")[1] == "/topics/trade-2"


def test_no_newer_lets_a_page_link_to_pages_of_its_own_day(pages):
    same_day = pages.assign(date=pd.Timestamp("2024-01-01"))
    model = fit(same_day, EditorialRules(no_newer=True))
    assert model.related_.equals(fit(same_day).related_)
    assert model.rule_events_.empty


def test_cross_min_score_keeps_what_scores_above_it_and_drops_what_scores_it(pages):
    plain = fit(pages).related_
    subjects = pages["subject_key"]
    cross = plain["source_url"].map(subjects) != plain["target_url"].map(subjects)
    weakest = float(plain.loc[cross, "score"].min())  # the lowest cross-subject link
    below = fit(pages, EditorialRules(cross_min_score=weakest * 0.999)).related_
    assert below.equals(plain)  # every cross-subject link scores above it: all stay
    at = fit(pages, EditorialRules(cross_min_score=weakest)).related_
    dropped = plain[cross & (plain["score"] == np.float32(weakest))]
    assert len(dropped) >= 1
    kept = set(zip(at["source_url"], at["target_url"], strict=True))
    assert not any(
        (s, t) in kept for s, t in zip(dropped["source_url"], dropped["target_url"], strict=True)
    )


def test_min_same_leaves_room_for_exactly_the_links_across_subjects_it_allows(pages):
    subjects = pages["subject_key"]

    def most_across(related):
        cross = related["source_url"].map(subjects) != related["target_url"].map(subjects)
        return int(cross.groupby(related["source_url"]).sum().max())

    assert most_across(fit(pages).related_) == 2
    model = fit(pages, EditorialRules(min_same=3))
    assert most_across(model.related_) == N_LINKS - 3
    assert_scores_are_cosines(model)


def test_recency_halves_a_targets_rank_every_half_life(pages):
    dates = pd.Series(pd.NaT, index=pages.index, dtype="datetime64[ns]")
    dates.iloc[:3] = pd.to_datetime(["2024-03-01", "2024-02-20", "2024-02-10"])
    resolved = EditorialRules(half_life_days=10).resolve(
        pages.assign(date=dates), n_links=N_LINKS, exclude_no_index=True
    )
    factors = resolved.recency()
    np.testing.assert_allclose(factors[:3], [1.0, 0.5, 0.25])
    assert (factors[3:] == 1.0).all()  # undated pages are not discounted


def test_rules_resolve_on_pages_without_paths_and_fold_subject_spacing(pages):
    bare = pages.drop(columns="path")
    rules = EditorialRules(
        nevers=(Never("subject:  Even \t", "/topics/trade-*"),), keeps=(Keep("/topics/stars-1"),)
    )
    resolved = rules.resolve(bare, n_links=N_LINKS, exclude_no_index=True)
    sources, targets = resolved.nevers[0]
    assert sources.tolist() == (bare["subject_key"] == "even").tolist()
    assert targets.tolist() == bare.index.str.startswith("/topics/trade-").tolist()
    assert np.flatnonzero(resolved.keep_rule >= 0).tolist() == [
        bare.index.get_loc("/topics/stars-1")
    ]


def test_a_page_a_rule_left_short_of_links_is_no_warning(pages):
    # cells-0 may link only to stars-0 and trade-0: short, but by the editor's choice
    rules = EditorialRules(nevers=(Never("/topics/cells-0", "/topics/*-[1-5]"),))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = fit(pages, rules, n_candidates=6)
    links = links_of(model.related_, "/topics/cells-0")
    assert 0 < len(links) < N_LINKS and set(links) <= {"/topics/stars-0", "/topics/trade-0"}


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            EditorialRules(nevers=(Never("/topics/cells-0", "/topics/nowhere", line=4),)),
            "rules:4: [[never]]: target '/topics/nowhere' names no page of the site",
        ),
        (
            EditorialRules(pins=(Pin("/topics/cells-0", "/topics/nowhere", line=2),)),
            "rules:2: [[pin]]: target '/topics/nowhere' names no page of the site",
        ),
    ],
)
def test_a_target_naming_no_page_is_refused_as_a_target(pages, rules, message):
    with pytest.raises(ConfigError) as error:
        fit(pages, rules)
    assert str(error.value) == message


def test_subjects_fold_case_and_every_run_of_spaces():
    assert subject_fold(" Art \t  History\nof  Ideas ") == "art history of ideas"
