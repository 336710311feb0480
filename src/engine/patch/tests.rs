//! Tests of the patch crate.

use super::*;
use serde_json::json;

fn patched(doc: Value, patch: Value) -> Result<Value> {
    let mut d = doc;
    json_patch(&mut d, &patch)?;
    Ok(d)
}

#[test]
fn pointers_read_escapes_and_refuse_what_is_not_one() {
    let p = Pointer::parse("/metadata/annotations/example.com~1owner~0x").unwrap();
    assert_eq!(
        p.tokens(),
        ["metadata", "annotations", "example.com/owner~x"]
    );
    assert!(Pointer::parse("").unwrap().is_root());
    assert!(matches!(
        Pointer::parse("spec/replicas"),
        Err(PatchError::Invalid(_))
    ));
    assert!(matches!(
        Pointer::parse("/a~2"),
        Err(PatchError::Invalid(_))
    ));
    assert_eq!(escape("a/b~c"), "a~1b~0c");
    let doc = json!({"a": [{"b": 1}, {"b": 2}]});
    assert_eq!(Pointer::parse("/a/1/b").unwrap().get(&doc), Some(&json!(2)));
    assert_eq!(
        Pointer::parse("/a/-1/b").unwrap().get(&doc),
        Some(&json!(2))
    );
    assert_eq!(Pointer::parse("/a/2/b").unwrap().get(&doc), None);
    assert_eq!(Pointer::parse("/a/x").unwrap().get(&doc), None);
}

#[test]
fn every_operation_of_rfc_6902() {
    let d = patched(
        json!({"a": {"b": [1, 2]}, "c": "x"}),
        json!([
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "add", "path": "/a/b/0", "value": 0},
            {"op": "replace", "path": "/c", "value": "y"},
            {"op": "copy", "from": "/c", "path": "/d"},
            {"op": "move", "from": "/d", "path": "/e"},
            {"op": "remove", "path": "/a/b/1"},
            {"op": "test", "path": "/e", "value": "y"},
            {"op": "add", "path": "/m~1n", "value": 1}
        ]),
    )
    .unwrap();
    assert_eq!(
        d,
        json!({"a": {"b": [0, 2, 3]}, "c": "y", "e": "y", "m/n": 1})
    );
}

#[test]
fn the_rfc_6902_appendix_examples() {
    // A.1 .. A.16, the ones that apply to values.
    let cases = [
        (
            json!({"foo": "bar"}),
            json!([{"op": "add", "path": "/baz", "value": "qux"}]),
            json!({"baz": "qux", "foo": "bar"}),
        ),
        (
            json!({"foo": ["bar", "baz"]}),
            json!([{"op": "add", "path": "/foo/1", "value": "qux"}]),
            json!({"foo": ["bar", "qux", "baz"]}),
        ),
        (
            json!({"baz": "qux", "foo": "bar"}),
            json!([{"op": "remove", "path": "/baz"}]),
            json!({"foo": "bar"}),
        ),
        (
            json!({"foo": ["bar", "qux", "baz"]}),
            json!([{"op": "remove", "path": "/foo/1"}]),
            json!({"foo": ["bar", "baz"]}),
        ),
        (
            json!({"baz": "qux", "foo": "bar"}),
            json!([{"op": "replace", "path": "/baz", "value": "boo"}]),
            json!({"baz": "boo", "foo": "bar"}),
        ),
        (
            json!({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}),
            json!([{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]),
            json!({"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
        ),
        (
            json!({"foo": ["all", "grass", "cows", "eat"]}),
            json!([{"op": "move", "from": "/foo/1", "path": "/foo/3"}]),
            json!({"foo": ["all", "cows", "eat", "grass"]}),
        ),
        (
            json!({"foo": "bar"}),
            json!([{"op": "add", "path": "/child", "value": {"grandchild": {}}}]),
            json!({"foo": "bar", "child": {"grandchild": {}}}),
        ),
        (
            json!({"foo": ["bar"]}),
            json!([{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]),
            json!({"foo": ["bar", ["abc", "def"]]}),
        ),
        (
            json!({"/": 9, "~1": 10}),
            json!([{"op": "test", "path": "/~01", "value": 10}]),
            json!({"/": 9, "~1": 10}),
        ),
    ];
    for (doc, patch, want) in cases {
        assert_eq!(patched(doc, patch.clone()).unwrap(), want, "{patch}");
    }
    // A.8 / A.9: tests.
    let doc = json!({"baz": "qux", "foo": ["a", 2, "c"]});
    assert!(
            patched(
                doc.clone(),
                json!([{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}])
            )
            .is_ok()
        );
    assert!(matches!(
        patched(doc, json!([{"op": "test", "path": "/baz", "value": "bar"}])),
        Err(PatchError::TestFailed { .. })
    ));
    // A.12: adding to a nonexistent target.
    let e = patched(
        json!({"foo": "bar"}),
        json!([{"op": "add", "path": "/baz/bat", "value": "qux"}]),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "cannot add /baz/bat: /baz does not exist");
    // A.15: comparing strings and numbers.
    assert!(matches!(
        patched(
            json!({"/": 9, "~1": 10}),
            json!([{"op": "test", "path": "/~01", "value": "10"}])
        ),
        Err(PatchError::TestFailed { .. })
    ));
}

#[test]
fn a_failing_operation_leaves_the_document_as_it_was() {
    let mut d = json!({"spec": {"replicas": 3}});
    let before = d.clone();
    let e = json_patch(
        &mut d,
        &json!([
            {"op": "replace", "path": "/spec/replicas", "value": 0},
            {"op": "remove", "path": "/spec/template/spec"}
        ]),
    )
    .unwrap_err();
    assert_eq!(d, before);
    assert_eq!(
        e.to_string(),
        "cannot remove /spec/template/spec: /spec/template does not exist"
    );
}

#[test]
fn operations_that_do_not_fit_say_why() {
    let doc = json!({"a": "text", "l": [1, 2]});
    let err = |p: Value| patched(doc.clone(), p).unwrap_err().to_string();
    assert_eq!(
        err(json!([{"op": "add", "path": "/a/b", "value": 1}])),
        "cannot add /a/b: /a is a string, not an object or a list"
    );
    assert_eq!(
        err(json!([{"op": "replace", "path": "/zz", "value": 1}])),
        "cannot replace /zz: /zz does not exist"
    );
    assert_eq!(
        err(json!([{"op": "add", "path": "/l/5", "value": 1}])),
        "cannot add /l/5: \"5\" is not a position in the list of 2 item(s) (0 to 2, or - for the end)"
    );
    assert_eq!(
        err(json!([{"op": "remove", "path": "/l/2"}])),
        "cannot remove /l/2: \"2\" is not an item of the list of 2 item(s)"
    );
    assert_eq!(
        err(json!([{"op": "remove", "path": ""}])),
        "cannot remove the whole document: the whole document cannot be removed"
    );
    assert!(err(json!([{"op": "move", "from": "/l", "path": "/l/0"}])).contains("inside itself"));
    assert!(err(json!([{"op": "frob", "path": "/a"}])).contains("unknown operation"));
    assert!(err(json!([{"op": "add", "path": "/a"}])).contains("has no value"));
    assert!(err(json!([{"op": "copy", "path": "/a"}])).contains("has no `from`"));
    assert!(err(json!({"op": "add"})).contains("must be a list"));
    assert!(err(json!([{"op": "add", "path": "a", "value": 1}])).contains("not a JSON pointer"));
}

#[test]
fn tests_compare_numbers_by_value_and_missing_fields_as_null() {
    let doc = json!({"spec": {"replicas": 3, "ratio": 1.0}});
    for ok in [
        json!([{"op": "test", "path": "/spec/replicas", "value": 3.0}]),
        json!([{"op": "test", "path": "/spec/ratio", "value": 1}]),
        json!([{"op": "test", "path": "/spec/paused", "value": null}]),
        json!([{"op": "test", "path": "", "value": {"spec": {"ratio": 1, "replicas": 3}}}]),
    ] {
        assert!(patched(doc.clone(), ok.clone()).is_ok(), "{ok}");
    }
    for failing in [
        json!([{"op": "test", "path": "/spec/replicas", "value": "3"}]),
        json!([{"op": "test", "path": "/spec/paused", "value": false}]),
        json!([{"op": "test", "path": "/status/x", "value": null}]),
    ] {
        assert!(
            matches!(
                patched(doc.clone(), failing.clone()),
                Err(PatchError::TestFailed { .. })
            ),
            "{failing}"
        );
    }
}

#[test]
fn the_rfc_7386_examples() {
    let cases = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (
            json!({"a": "b", "b": "c"}),
            json!({"a": null}),
            json!({"b": "c"}),
        ),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a": "b"}), json!(["c"]), json!(["c"])),
        (json!({"a": "foo"}), json!(null), json!(null)),
        (json!({"a": "foo"}), json!("bar"), json!("bar")),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!([1, 2]),
            json!({"a": "b", "c": null}),
            json!({"a": "b"}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
    ];
    for (doc, patch, want) in cases {
        let mut d = doc.clone();
        merge(&mut d, &patch);
        assert_eq!(d, want, "{doc} + {patch}");
    }
}

fn strategic(doc: Value, patch: Value) -> Result<Value> {
    let mut d = doc;
    strategic_merge(&mut d, &patch)?;
    Ok(d)
}

#[test]
fn strategic_merge_merges_containers_by_name_and_deletes_with_patch_delete() {
    let d = strategic(
            json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}),
            json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "c", "image": "w"}, {"name": "a", "$patch": "delete"}]}}),
        )
        .unwrap();
    assert_eq!(
        d,
        json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "c", "image": "w"}]}})
    );
}

#[test]
fn strategic_merge_knows_each_list_by_where_it_is() {
    let pod = json!({"spec": {
            "containers": [{"name": "app", "image": "app:1",
                "env": [{"name": "A", "value": "1"}],
                "ports": [{"containerPort": 80, "name": "http"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "args": ["--a"]}],
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "volumes": [{"name": "data", "emptyDir": {}}]}});
    let d = strategic(
        pod,
        json!({"spec": {
                "containers": [{"name": "app",
                    "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "3"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                    "args": ["--b"]}],
                "tolerations": [{"key": "j", "operator": "Exists"}],
                "volumes": [{"name": "cache", "emptyDir": {}}]}}),
    )
    .unwrap();
    assert_eq!(
        d,
        json!({"spec": {
                "containers": [{"name": "app", "image": "app:1",
                    "env": [{"name": "A", "value": "3"}, {"name": "B", "value": "2"}],
                    "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cache", "mountPath": "/cache"}],
                    "args": ["--b"]}],
                "tolerations": [{"key": "j", "operator": "Exists"}],
                "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cache", "emptyDir": {}}]}})
    );
    // A Service's ports merge on port; a NetworkPolicy's are replaced.
    let d = strategic(
        json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443}]}}),
        json!({"spec": {"ports": [{"port": 443, "name": "https"}]}}),
    )
    .unwrap();
    assert_eq!(
        d,
        json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}})
    );
    let d = strategic(
        json!({"spec": {"ingress": [{"ports": [{"protocol": "TCP", "port": 80}]}]}}),
        json!({"spec": {"ingress": [{"ports": [{"protocol": "UDP"}]}]}}),
    )
    .unwrap();
    assert_eq!(
        d,
        json!({"spec": {"ingress": [{"ports": [{"protocol": "UDP"}]}]}})
    );
    // Finalizers are a set of values.
    let d = strategic(
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["b", "c"], "$deleteFromPrimitiveList/finalizers": ["a"]}}),
        )
        .unwrap();
    assert_eq!(d, json!({"metadata": {"finalizers": ["b", "c"]}}));
}

#[test]
fn strategic_merge_directives() {
    let doc = json!({"spec": {
            "selector": {"app": "a", "tier": "web"},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "containers": [{"name": "a"}, {"name": "b"}]}});
    // A map replaced, a map emptied, a list replaced by an item directive.
    let d = strategic(
        doc.clone(),
        json!({"spec": {
                "selector": {"$patch": "replace", "app": "b"},
                "strategy": {"$patch": "delete"},
                "containers": [{"$patch": "replace"}, {"name": "c"}]}}),
    )
    .unwrap();
    assert_eq!(
        d,
        json!({"spec": {"selector": {"app": "b"}, "strategy": {}, "containers": [{"name": "c"}]}})
    );
    // $retainKeys clears what it does not name.
    let d = strategic(
        doc.clone(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    )
    .unwrap();
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    // New values carry no directives and no nulls.
    let d = strategic(
            json!({}),
            json!({"metadata": {"labels": {"a": "1", "b": null}}, "spec": {"containers": [{"name": "x", "$patch": "delete"}]}}),
        )
        .unwrap();
    assert_eq!(
        d,
        json!({"metadata": {"labels": {"a": "1"}}, "spec": {"containers": []}})
    );
}

#[test]
fn strategic_merge_refuses_what_it_cannot_do_and_changes_nothing() {
    let doc = json!({"spec": {"containers": [{"name": "a"}], "args": ["x"]}});
    for (patch, says) in [
        (
            json!({"spec": {"containers": [{"image": "x"}]}}),
            "has no name",
        ),
        (json!({"spec": {"containers": ["x"]}}), "is not an object"),
        (
            json!({"spec": {"args": [{"$patch": "delete", "name": "x"}]}}),
            "replaced as a whole",
        ),
        (json!({"spec": {"$patch": "frob"}}), "unknown $patch"),
        (
            json!({"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}),
            "can only be deleted",
        ),
        (
            json!({"spec": {"$retainKeys": ["a"], "b": 1}}),
            "leaves it out of $retainKeys",
        ),
        (json!({"spec": {"$retainKeys": "a"}}), "list of field names"),
        (json!(["x"]), "must be an object"),
    ] {
        let mut d = doc.clone();
        let e = strategic_merge(&mut d, &patch).unwrap_err().to_string();
        assert!(e.contains(says), "{patch}: {e}");
        assert_eq!(d, doc);
    }
}

#[test]
fn strategic_merge_keeps_what_the_patch_does_not_name() {
    let d = strategic(
        json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"replicas": 2}}),
        json!({"metadata": {"labels": {"b": "2", "a": null}}, "spec": {"replicas": 0}}),
    )
    .unwrap();
    assert_eq!(
        d,
        json!({"metadata": {"name": "x", "labels": {"b": "2"}}, "spec": {"replicas": 0}})
    );
}

/// `$setElementOrder` as kubectl sends it and the API server applies it
/// (`normalizeElementOrder` in apimachinery's strategicpatch).
#[test]
fn set_element_order_orders_the_merged_list_as_kubernetes_does() {
    let names = |d: &Value, f: &str| -> Vec<String> {
        d["spec"][f]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    let doc = json!({"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b"}, {"name": "c"}]}});
    // Reorders what is there, and patches an item on the way.
    let d = strategic(
        doc.clone(),
        json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}],
                        "containers": [{"name": "a", "image": "a:2"}]}}),
    )
    .unwrap();
    assert_eq!(names(&d, "containers"), ["c", "a", "b"]);
    assert_eq!(d["spec"]["containers"][1]["image"], "a:2");
    // A new item goes where the order puts it, not at the end.
    let d = strategic(
        doc.clone(),
        json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "new"}, {"name": "b"}, {"name": "c"}],
                        "containers": [{"name": "new"}]}}),
    )
    .unwrap();
    assert_eq!(names(&d, "containers"), ["a", "new", "b", "c"]);
    // Items the order leaves out (the server's own) keep their order, each before the
    // next named item of the new order when it was before that item in the document.
    let d = strategic(
        json!({"spec": {"containers": [{"name": "x"}, {"name": "a"}, {"name": "y"}, {"name": "b"}]}}),
        json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}),
    )
    .unwrap();
    assert_eq!(names(&d, "containers"), ["x", "y", "b", "a"]);
    // With a deletion: the deleted item is gone, the rest in order.
    let d = strategic(
        doc.clone(),
        json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "b"}],
                        "containers": [{"name": "a", "$patch": "delete"}]}}),
    )
    .unwrap();
    assert_eq!(names(&d, "containers"), ["c", "b"]);
    // Lists of values (finalizers) are ordered by value.
    let d = strategic(
        json!({"metadata": {"finalizers": ["one", "two"]}}),
        json!({"metadata": {"$setElementOrder/finalizers": ["three", "two", "one"], "finalizers": ["three"]}}),
    )
    .unwrap();
    assert_eq!(d["metadata"]["finalizers"], json!(["three", "two", "one"]));
    // An order that is not a list is refused and changes nothing.
    let e = strategic(
        doc.clone(),
        json!({"spec": {"$setElementOrder/containers": "a"}}),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("$setElementOrder/containers (in spec) must be a list"),
        "{e}"
    );
}
