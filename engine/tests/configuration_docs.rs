//! docs/configuration.md is generated from the key registry, so it cannot drift: this test
//! renders it and compares. After changing a key, rewrite the page with
//! `STAGESQL_BLESS=1 cargo test -p stagesql --test configuration_docs`.

use stagesql::config::keys::{DEFINITIONS, ValueType, is_static};

fn render() -> String {
    let mut page = String::from(
        "# Configuration keys\n\n\
         <!-- Generated from engine/src/config/keys.rs by engine/tests/configuration_docs.rs; \
         do not edit by hand. -->\n\n\
         Every key stagesql defines: Spark's names (`spark.*`) where Spark has the concept, \
         `stagesql.*` for our own. DataFusion's keys (`datafusion.*`) are listed by `SET -v` \
         and in [DataFusion's configuration reference]\
         (https://datafusion.apache.org/user-guide/configs.html). Where a value comes from, \
         and how to set one, is in [sql.md](sql.md#settings).\n\n\
         | key | default | accepts | meaning |\n|---|---|---|---|\n",
    );
    for definition in DEFINITIONS {
        let accepts = match definition.value_type {
            ValueType::Integer { min } => format!("whole number ≥ {min}"),
            ValueType::Number { min } => format!("number ≥ {min}"),
            ValueType::Fraction => "number from 0 to 1".to_string(),
            ValueType::Bytes {
                allow_negative_one: true,
            } => "size (`10m`, `1g`) or -1".to_string(),
            ValueType::Bytes { .. } => "size (`10m`, `1g`)".to_string(),
            ValueType::Choice(choices) => choices
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", "),
            ValueType::Text => "text".to_string(),
            ValueType::Master => "`local[N]`, `local[*]`, `df://host:port`".to_string(),
        };
        let default = match definition.default {
            "" => "(unset)".to_string(),
            value => format!("`{value}`"),
        };
        let fixed = match is_static(definition.key) {
            true => {
                "**Fixed when the session starts** (properties file or command line; `SET` refuses it). "
            }
            false => "",
        };
        page.push_str(&format!(
            "| `{}` | {default} | {accepts} | {fixed}{} |\n",
            definition.key,
            definition.description.replace('|', "\\|")
        ));
    }
    page
}

#[test]
fn the_configuration_page_lists_every_key_as_the_registry_defines_it() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
    let expected = render();
    if std::env::var_os("STAGESQL_BLESS").is_some() {
        std::fs::write(path, &expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/configuration.md is out of date with the key registry; rewrite it with\n  STAGESQL_BLESS=1 cargo test -p stagesql --test configuration_docs"
    );
}
