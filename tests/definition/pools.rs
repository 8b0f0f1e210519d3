//! pools.xml, `pool`/`pool-slots`/`priority` on actions, `priority` on workflows and `pool` on db
//! links: read into the model, a link's pool given to the actions on it, every mistake named with
//! its file and line.

use super::*;

const POOLS: &str = r#"<pools>
  <pool name="warehouse" slots="4" desc="the DW"/>
  <pool name="api" slots="1"/>
</pools>"#;

const LINKS: &str = r#"<db-links>
  <link name="dw" type="MYSQL" jdbc-url="jdbc:mysql://h/dw" pool="warehouse"/>
  <link name="lake" type="POSTGRESQL" jdbc-url="jdbc:postgresql://h/lake" pool="api"/>
  <link name="scratch" type="SQLITE" jdbc-url="jdbc:sqlite:/tmp/s.db"/>
</db-links>"#;

fn wf(actions: &str) -> String {
    format!(
        r#"<work-flow name="etl" priority="3">
  <start name="start" to="a"/>
{actions}
  <end name="end"/>
</work-flow>"#
    )
}

fn load(actions: &str) -> Result<DefinitionSet, Vec<Diagnostic>> {
    load_sources(vec![
        source("x/pools.xml", POOLS),
        source("x/db_links.xml", LINKS),
        source("x/etl.xml", &wf(actions)),
    ])
}

fn node(set: &DefinitionSet, name: &str) -> akkaflow::definition::Action {
    match &workflow(set, "etl").node(name).unwrap().kind {
        NodeKind::Action(a) => (**a).clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pools_links_and_priorities_are_read_and_links_give_their_pool() {
    let set = load(
        r#"  <action name="a" pool="api" pool-slots="1" priority="-2"><sql db-link="dw">select 1</sql><ok to="b"/></action>
  <action name="b"><sql db-link="dw">select 1</sql><ok to="c"/></action>
  <action name="c" pool-slots="3"><shell><command>true</command></shell><ok to="d"/></action>
  <action name="d" pool="warehouse" pool-slots="4"><sql db-link="scratch">select 1</sql><ok to="end"/></action>"#,
    )
    .unwrap_or_else(|d| panic!("{}", render(&d)));
    let pools: Vec<(&str, u32, &str)> = set
        .pools
        .iter()
        .map(|p| (p.name.as_str(), p.slots, p.description.as_str()))
        .collect();
    assert_eq!(pools, [("warehouse", 4, "the DW"), ("api", 1, "")]);
    assert_eq!(set.db_links[0].pool.as_deref(), Some("warehouse"));
    assert_eq!(workflow(&set, "etl").priority, 3);
    let a = node(&set, "a");
    assert_eq!(
        (a.pool.as_deref(), a.pool_slots, a.priority),
        (Some("api"), 1, Some(-2))
    );
    // on a pooled link and naming none: the link's pool
    let b = node(&set, "b");
    assert_eq!(
        (b.pool.as_deref(), b.pool_slots, b.priority),
        (Some("warehouse"), 1, None)
    );
    // no pool at all: pool-slots is kept but means nothing
    assert_eq!(node(&set, "c").pool, None);
    assert_eq!(node(&set, "d").pool.as_deref(), Some("warehouse"));
}

#[test]
fn a_workflow_without_pools_serialises_as_before() {
    // new fields are left out of the stored JSON when unused, so existing workflows keep their
    // content hash (no new version on upgrade)
    let set =
        load(r#"  <action name="a"><shell><command>true</command></shell><ok to="end"/></action>"#)
            .unwrap();
    let json = serde_json::to_string(&workflow(&set, "etl").nodes).unwrap();
    assert!(!json.contains("pool"), "{json}");
    assert!(!json.contains("priority"), "{json}");
}

#[test]
fn pool_mistakes_are_named_with_file_and_line() {
    let diags = load_sources(vec![
        source(
            "x/pools.xml",
            r#"<pools>
  <pool name="warehouse" slots="4"/>
  <pool name="warehouse" slots="2"/>
  <pool name="bad name" slots="1"/>
  <pool name="neg" slots="-1"/>
  <pool name="none"/>
</pools>"#,
        ),
        source(
            "x/db_links.xml",
            r#"<db-links>
  <link name="dw" type="MYSQL" jdbc-url="jdbc:mysql://h/dw" pool="warehouse"/>
  <link name="other" type="MYSQL" jdbc-url="jdbc:mysql://h/o" pool="nope"/>
  <link name="third" type="MYSQL" jdbc-url="jdbc:mysql://h/t" pool="neg"/>
</db-links>"#,
        ),
        source(
            "x/etl.xml",
            &wf(r#"  <action name="a" pool="missing"><shell><command>true</command></shell><ok to="b"/></action>
  <action name="b" pool="warehouse" pool-slots="5"><shell><command>true</command></shell><ok to="c"/></action>
  <action name="c" priority="high"><shell><command>true</command></shell><ok to="d"/></action>
  <action name="d"><transfer><source type="DB" db-link="dw">t</source><target type="DB" db-link="third" table="t"/></transfer><ok to="e"/></action>
  <action name="e" pool-slots="0"><shell><command>true</command></shell><ok to="end"/></action>"#),
        ),
    ])
    .unwrap_err();
    let got: Vec<String> = errors(&diags).iter().map(|d| d.to_string()).collect();
    let expect = [
        "x/db_links.xml:3:3: db link \"other\" names unknown pool \"nope\": define it in pools.xml (defined: warehouse, bad name, neg)",
        "x/etl.xml:3:3: action \"a\" names unknown pool \"missing\": define it in pools.xml (defined: warehouse, bad name, neg)",
        "x/etl.xml:4:3: action \"b\": pool-slots is 5 but pool \"warehouse\" has only 4 slots, so it could never start",
        "x/etl.xml:5:3: action \"c\": priority must be a whole number, not \"high\"",
        "x/etl.xml:6:3: action \"d\" works on db links in different pools, \"dw\" (pool warehouse) and \"third\" (pool neg): name its pool with pool=\"...\"",
        "x/etl.xml:7:3: action \"e\": pool-slots must be at least 1, not 0",
        "x/pools.xml:3:3: pool \"warehouse\" is defined twice: x/pools.xml:2 and here",
        "x/pools.xml:4:3: pool name \"bad name\" may hold only letters, digits, `_`, `-` and `.` (not first): no spaces, `/`, `?`, `#` or `..`",
        "x/pools.xml:5:3: pool \"neg\": slots must be a whole number, not \"-1\"",
        "x/pools.xml:6:3: pool \"none\" has no slots attribute",
    ];
    assert_eq!(got, expect, "{}", render(&diags));
}
