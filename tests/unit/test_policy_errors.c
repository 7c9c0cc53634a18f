/* test_policy_errors.c -- policy_parse()/policy_load() on policies that must fail: one test
 * per class of error (types, enums, keys, names, patterns, classes and class references, lists,
 * selectors, shadowed rules, the document itself), each with its exact file:line:col message,
 * errors collected in file order and capped, messages under an overlong file name, and files
 * that cannot be loaded. */
#include <unistd.h>

#include "gx/policy.h"

#include "check.h"
#include "policy_helpers.h"

/* ---- one test per class of error ---- */

static void test_type_errors(void)
{
    expect_error(HEAD "scoring: 5\n", "p.yaml:3:10: scoring: expected a mapping, got \"5\"");
    expect_error(HEAD "scoring:\n", "p.yaml:3:9: scoring: expected a mapping, got null");
    expect_error(HEAD "classes: {name: a}\n",
                 "p.yaml:3:10: classes: expected a list of classes, got a mapping");
    expect_error(HEAD "classes:\n  - h100\n", "p.yaml:4:5: classes[0]: expected a mapping, got a "
                                              "scalar");
    expect_error(HEAD "rules: x\n", "p.yaml:3:8: rules: expected a list of rules, got \"x\"");
    expect_error(HEAD "default: [a]\n", "p.yaml:3:10: default: expected a mapping, got a sequence");
    expect_error(HEAD "default:\n  prefer: [h100]\n",
                 "p.yaml:4:12: default.prefer[0]: expected a mapping, got a scalar");
    expect_error(HEAD "default:\n  prefer: {class: h100}\n",
                 "p.yaml:4:11: default.prefer: expected a list of preferences, got a mapping");
    expect_error(HEAD "default:\n  allow: t4\n",
                 "p.yaml:4:10: default.allow: expected a list of class names, got \"t4\"; write "
                 "[t4] for a list of one");
    expect_error(HEAD "default:\n  forbid: [[t4]]\n",
                 "p.yaml:4:12: default.forbid[0]: expected a class name, got a sequence");
    expect_error(HEAD "rules:\n  - name: r\n    match: {labels: [a]}\n",
                 "p.yaml:5:21: rules[0].match.labels: expected a mapping of label keys to values, "
                 "got a sequence");
    expect_error(HEAD "rules:\n  - name: r\n    match: {labels: {a: }}\n",
                 "p.yaml:5:25: rules[0].match.labels.a: expected a label value, got null; write "
                 "\"\" for an empty value");
    expect_error(HEAD "rules:\n  - name: r\n    match: x\n",
                 "p.yaml:5:12: rules[0].match: expected a mapping, got \"x\"");
    expect_error(HEAD "rules:\n  - name: [r]\n    match: {namespaces: [a]}\n",
                 "p.yaml:4:11: rules[0].name: expected a name, got a sequence");
    expect_error(HEAD "classes:\n  - {name: a, products: [~]}\n",
                 "p.yaml:4:26: classes[0].products[0]: expected a product name or pattern, got "
                 "null");
}

static void test_enum_errors(void)
{
    expect_error(HEAD "scoring:\n  strategy: fill\n",
                 "p.yaml:4:13: scoring.strategy: expected binpack or spread, got \"fill\"");
    expect_error(HEAD "default:\n  topology: {minGPUs: 2, require: nvlink}\n",
                 "p.yaml:4:35: default.topology.require: expected SYS, NODE, PHB, PXB, PIX or "
                 "NVLink, got \"nvlink\"");
    expect_error("apiVersion: v1\nkind: GPUPolicy\n",
                 "p.yaml:1:13: apiVersion: expected gpu-extender.io/v1alpha1, got \"v1\"");
    expect_error("apiVersion: gpu-extender.io/v1alpha1\nkind: Deployment\n",
                 "p.yaml:2:7: kind: expected GPUPolicy, got \"Deployment\"");
}

static void test_key_errors(void)
{
    expect_error(HEAD "foo: 1\n", "p.yaml:3:1: foo: unknown key (known keys here: " KNOWN_TOP ")");
    expect_error(HEAD "scoring:\n  weights:\n    gpus: 1\n",
                 "p.yaml:5:5: scoring.weights.gpus: unknown key (known keys here: freeGPUs, "
                 "model, topology, scarcity)");
    expect_error(HEAD "scoring: {strategi: spread}\n",
                 "p.yaml:3:11: scoring.strategi: unknown key (known keys here: strategy, "
                 "weights)");
    expect_error(HEAD "podOverrides: {model: false}\n",
                 "p.yaml:3:16: podOverrides.model: unknown key (known keys here: strategy, "
                 "models, preferred)");
    expect_error(HEAD "scoring.strategy: spread\n",
                 "p.yaml:3:1: scoring.strategy: unknown key (known keys here: " KNOWN_TOP ")");
    expect_error(HEAD "rules[]: 1\n",
                 "p.yaml:3:1: rules[]: unknown key (known keys here: " KNOWN_TOP ")");
    expect_error(HEAD "classes:\n  - {name: a, family: [x]}\n",
                 "p.yaml:4:15: classes[0].family: unknown key (known keys here: name, products, "
                 "families, minMemoryMiB)");
    expect_error(HEAD "rules:\n  - {name: r, match: {namespaces: [a]}, allowed: [x]}\n",
                 "p.yaml:4:41: rules[0].allowed: unknown key (known keys here: " KNOWN_RULE ")");
    expect_error(HEAD "rules:\n  - {name: r, match: {namespace: [a]}}\n",
                 "p.yaml:4:23: rules[0].match.namespace: unknown key (known keys here: "
                 "namespaces, labels, priorityClassNames)");
    expect_error(HEAD "rules:\n  - {name: r, match: {namespaces: [a]}, topology: {gpus: 2, "
                      "minGPUs: 2, require: PIX}}\n",
                 "p.yaml:4:52: rules[0].topology.gpus: unknown key (known keys here: minGPUs, "
                 "require)");
    expect_error(HEAD "default: {name: x}\n",
                 "p.yaml:3:11: default.name: unknown key (known keys here: " KNOWN_DEFAULT ")");
    expect_error(HEAD CLASSES "default: {prefer: [{class: h100, wieght: 1}]}\n",
                 "p.yaml:7:34: default.prefer[0].wieght: unknown key (known keys here: class, "
                 "weight)");
    expect_error(HEAD "default: {podOverrides: {model: true}}\n",
                 "p.yaml:3:26: default.podOverrides.model: unknown key (known keys here: "
                 "strategy, models, preferred)");

    expect_error(HEAD "kind: GPUPolicy\n", "p.yaml:3:1: kind: duplicate key");
    expect_error(HEAD "scoring:\n  weights: {model: 1, model: 2}\n",
                 "p.yaml:4:23: scoring.weights.model: duplicate key");
    expect_error(HEAD "rules:\n  - {name: r, match: {namespaces: [a]}, name: s}\n",
                 "p.yaml:4:41: rules[0].name: duplicate key");
    expect_error(HEAD "rules:\n  - {name: r, match: {labels: {a: b, a: c}}}\n",
                 "p.yaml:4:38: rules[0].match.labels.a: duplicate key");

    expect_error("kind: GPUPolicy\n", "p.yaml:1:1: apiVersion: required key is missing");
    expect_error("# a policy\n\napiVersion: gpu-extender.io/v1alpha1\n",
                 "p.yaml:3:1: kind: required key is missing");
    expect_error(HEAD "classes:\n  - products: [x]\n",
                 "p.yaml:4:5: classes[0].name: required key is missing");
    expect_error(HEAD "rules:\n  - match: {namespaces: [a]}\n",
                 "p.yaml:4:5: rules[0].name: required key is missing");
    expect_error(HEAD "default:\n  prefer:\n    - weight: 5\n",
                 "p.yaml:5:7: default.prefer[0].class: required key is missing");
    expect_error(HEAD "default:\n  topology:\n    minGPUs: 4\n",
                 "p.yaml:5:5: default.topology.require: required key is missing");
    expect_error(HEAD "default:\n  topology: {require: NVLink}\n",
                 "p.yaml:4:13: default.topology.minGPUs: required key is missing");
}

static void test_name_errors(void)
{
    expect_error(HEAD "classes:\n  - {name: H100, products: [x]}\n",
                 "p.yaml:4:12: classes[0].name: invalid name \"H100\": " NAME_RULE);
    expect_error(HEAD "classes:\n  - {name: -a, products: [x]}\n",
                 "p.yaml:4:12: classes[0].name: invalid name \"-a\": " NAME_RULE);
    expect_error(HEAD "classes:\n  - {name: \"\", products: [x]}\n",
                 "p.yaml:4:12: classes[0].name: empty; expected a name");
    expect_error(HEAD "rules:\n  - {name: ml_train, match: {namespaces: [a]}}\n",
                 "p.yaml:4:12: rules[0].name: invalid name \"ml_train\": " NAME_RULE);
    expect_error(HEAD "rules:\n  - {name: r, match: {namespaces: [ML]}}\n",
                 "p.yaml:4:36: rules[0].match.namespaces[0]: invalid namespace \"ML\": " NAME_RULE);
    expect_error(
        HEAD "rules:\n  - {name: r, match: {namespaces: [a.b]}}\n",
        "p.yaml:4:36: rules[0].match.namespaces[0]: invalid namespace \"a.b\": " NAME_RULE);
    expect_error(HEAD "rules:\n  - {name: r, match: {priorityClassNames: [a..b]}}\n",
                 "p.yaml:4:44: rules[0].match.priorityClassNames[0]: invalid priority class name "
                 "\"a..b\": use up to 253 characters a-z, 0-9, '-' or '.', starting and ending "
                 "with a letter or digit");
    expect_error(HEAD "rules:\n  - {name: r, match: {labels: {-team: ml}}}\n",
                 "p.yaml:4:32: rules[0].match.labels.-team: " LABEL_KEY_RULE);
    expect_error(HEAD "rules:\n  - {name: r, match: {labels: {Example.com/team: ml}}}\n",
                 "p.yaml:4:32: rules[0].match.labels.Example.com/team: " LABEL_KEY_RULE);
    expect_error(HEAD "rules:\n  - {name: r, match: {labels: {a/b/c: ml}}}\n",
                 "p.yaml:4:32: rules[0].match.labels.a/b/c: " LABEL_KEY_RULE);
    expect_error(HEAD "rules:\n  - {name: r, match: {labels: {a_b.c/d: ml}}}\n",
                 "p.yaml:4:32: rules[0].match.labels.a_b.c/d: " LABEL_KEY_RULE);
    expect_error(HEAD "rules:\n  - {name: r, match: {labels: {team: m l}}}\n",
                 "p.yaml:4:38: rules[0].match.labels.team: invalid label value \"m l\": use \"\" "
                 "or " LABEL_RULE);
    expect_error(
        HEAD "classes:\n  - {name: a, families: [hop per]}\n",
        "p.yaml:4:26: classes[0].families[0]: invalid family \"hop per\": use " LABEL_RULE);
}

static void test_pattern_errors(void)
{
    expect_error(HEAD "classes:\n  - {name: a, products: [\"\"]}\n",
                 "p.yaml:4:26: classes[0].products[0]: empty; expected a product name or pattern");
    expect_error(HEAD "classes:\n  - {name: a, products: [\"NVIDIA H100\"]}\n",
                 "p.yaml:4:26: classes[0].products[0]: invalid pattern \"NVIDIA H100\": a product "
                 "label has only A-Z, a-z, 0-9, '-', '_' and '.' (and * ? here)");
    expect_error(HEAD "classes:\n  - {name: a, products: [\"H100[0-9]\"]}\n",
                 "p.yaml:4:26: classes[0].products[0]: invalid pattern \"H100[0-9]\": a product "
                 "label has only A-Z, a-z, 0-9, '-', '_' and '.' (and * ? here)");
}

static void test_class_errors(void)
{
    expect_error(HEAD "classes:\n  - name: a\n",
                 "p.yaml:4:5: classes[0]: matches no node: give at least one of products, "
                 "families or minMemoryMiB");
    expect_error(HEAD "classes:\n  - {name: a, products: [x]}\n  - {name: b, products: [y]}\n"
                      "  - {name: a, families: [z]}\n",
                 "p.yaml:6:12: classes[2].name: duplicate class name \"a\" (first at line 4)");
    /* An invalid criterion is one error, not also "no criterion". */
    expect_error(HEAD "classes:\n  - {name: a, minMemoryMiB: 0}\n",
                 "p.yaml:4:29: classes[0].minMemoryMiB: must be 1..10000000, got 0");
}

static void test_rule_name_errors(void)
{
    expect_error(HEAD "rules:\n  - {name: default, match: {namespaces: [a]}}\n",
                 "p.yaml:4:12: rules[0].name: \"default\" is reserved; write the default rule "
                 "under the key default");
    expect_error(HEAD "rules:\n  - {name: a, match: {namespaces: [a]}}\n"
                      "  - {name: a, match: {namespaces: [b]}}\n",
                 "p.yaml:5:12: rules[1].name: duplicate rule name \"a\" (first at line 4)");
}

static void test_undefined_classes(void)
{
    expect_error(HEAD CLASSES "rules:\n  - name: r\n    match: {namespaces: [a]}\n"
                              "    allow: [h100, h10]\n",
                 "p.yaml:10:19: rules[0].allow[1]: undefined class \"h10\" (defined classes: h100, "
                 "a100, t4)");
    expect_error(HEAD CLASSES "default:\n  forbid: [T4]\n",
                 "p.yaml:8:12: default.forbid[0]: undefined class \"T4\" (defined classes: h100, "
                 "a100, t4)");
    expect_error(HEAD CLASSES "default:\n  prefer:\n    - class: h200\n",
                 "p.yaml:9:14: default.prefer[0].class: undefined class \"h200\" (defined "
                 "classes: h100, a100, t4)");
    expect_error(HEAD "default:\n  allow: [t4]\n",
                 "p.yaml:4:11: default.allow[0]: undefined class \"t4\" (no classes are defined)");
    /* A class with an error of its own is not reported again where it is used. */
    expect_error(HEAD "classes:\n  - {name: t4, products: [\"T 4\"]}\ndefault:\n  allow: [t4]\n",
                 "p.yaml:4:27: classes[0].products[0]: invalid pattern \"T 4\": a product label "
                 "has only A-Z, a-z, 0-9, '-', '_' and '.' (and * ? here)");
    expect_error(HEAD "classes:\n  - {name: T4, products: [x]}\ndefault:\n  allow: [T4]\n",
                 "p.yaml:4:12: classes[0].name: invalid name \"T4\": " NAME_RULE);
    /* A long class list is cut short. */
    {
        char *text = fmt("%sclasses:\n%sdefault: {allow: [nope]}\n", HEAD,
                         "  - {name: class-number-one, families: [a]}\n"
                         "  - {name: class-number-two, families: [a]}\n"
                         "  - {name: class-number-three, families: [a]}\n"
                         "  - {name: class-number-four, families: [a]}\n"
                         "  - {name: class-number-five, families: [a]}\n"
                         "  - {name: class-number-six, families: [a]}\n");
        expect_error(text, "p.yaml:10:19: default.allow[0]: undefined class \"nope\" (defined "
                           "classes: class-number-one, class-number-two, class-number-three, "
                           "class-number-four, class-number-five, ...)");
        free(text);
    }
}

static void test_list_errors(void)
{
    expect_error(HEAD "rules:\n  - {name: r, match: {namespaces: []}}\n",
                 "p.yaml:4:35: rules[0].match.namespaces: empty, so the rule can never match; "
                 "remove the key instead");
    expect_error(HEAD "rules:\n  - {name: r, match: {priorityClassNames: []}}\n",
                 "p.yaml:4:43: rules[0].match.priorityClassNames: empty, so the rule can never "
                 "match; remove the key instead");
    expect_error(HEAD "rules:\n  - {name: r, match: {labels: {}}}\n",
                 "p.yaml:4:31: rules[0].match.labels: empty; remove the key or give at least one "
                 "entry");
    expect_error(HEAD "default: {allow: []}\n",
                 "p.yaml:3:18: default.allow: empty; remove the key or give at least one entry");
    expect_error(HEAD "default: {prefer: []}\n",
                 "p.yaml:3:19: default.prefer: empty; remove the key or give at least one entry");
    expect_error(HEAD "classes: []\n",
                 "p.yaml:3:10: classes: empty; remove the key or give at least one entry");
    expect_error(HEAD "rules: []\n",
                 "p.yaml:3:8: rules: empty; remove the key or give at least one entry");
    expect_error(HEAD "classes:\n  - {name: a, products: []}\n",
                 "p.yaml:4:25: classes[0].products: empty; remove the key or give at least one "
                 "entry");

    expect_error(HEAD "rules:\n  - {name: r, match: {namespaces: [a, b, a]}}\n",
                 "p.yaml:4:42: rules[0].match.namespaces[2]: duplicate entry \"a\" (first at "
                 "namespaces[0])");
    expect_error(HEAD CLASSES "default: {forbid: [t4, h100, t4]}\n",
                 "p.yaml:7:30: default.forbid[2]: duplicate entry \"t4\" (first at forbid[0])");
    /* Products and families ignore case, as matching does. */
    expect_error(HEAD "classes:\n  - {name: a, products: [Tesla-T4, TESLA-t4]}\n",
                 "p.yaml:4:36: classes[0].products[1]: duplicate entry \"TESLA-t4\" (first at "
                 "products[0])");
    expect_error(HEAD "classes:\n  - {name: a, families: [ampere, Ampere]}\n",
                 "p.yaml:4:34: classes[0].families[1]: duplicate entry \"Ampere\" (first at "
                 "families[0])");
}

static void test_match_errors(void)
{
    expect_error(HEAD "rules:\n  - name: r\n    strategy: spread\n",
                 "p.yaml:4:5: rules[0]: no match, so the rule matches every pod; put it under "
                 "default");
    expect_error(HEAD "rules:\n  - name: r\n    match: {}\n",
                 "p.yaml:5:12: rules[0].match: empty, so the rule matches every pod; put it under "
                 "default");
    /* A broken selector is one error: the rule is neither "every pod" nor compared. */
    expect_error(HEAD "rules:\n  - {name: a, match: {namespace: [x]}}\n"
                      "  - {name: b, match: {namespaces: [x]}}\n",
                 "p.yaml:4:23: rules[0].match.namespace: unknown key (known keys here: "
                 "namespaces, labels, priorityClassNames)");
}

static void test_shadowed_rules(void)
{
    static const char *const shadowed[] = {
        /* Same namespaces. */
        "  - {name: ml-all, match: {namespaces: [ml]}}\n"
        "  - {name: b, match: {namespaces: [ml]}}\n",
        /* A subset of namespaces, and B adds a label. */
        "  - {name: ml-all, match: {namespaces: [ml, ml-dev]}}\n"
        "  - {name: b, match: {namespaces: [ml-dev], labels: {team: x}}}\n",
        /* A selects on labels only; B has them and more. */
        "  - {name: ml-all, match: {labels: {team: ml}}}\n"
        "  - {name: b, match: {labels: {team: ml, stage: train}, namespaces: [x]}}\n",
        /* Priority classes. */
        "  - {name: ml-all, match: {priorityClassNames: [high, low]}}\n"
        "  - {name: b, match: {priorityClassNames: [low], namespaces: [x]}}\n",
    };
    static const char *const fine[] = {
        /* B is broader: A has namespaces, B has none. */
        "  - {name: a, match: {namespaces: [ml], labels: {team: x}}}\n"
        "  - {name: b, match: {labels: {team: x}}}\n",
        /* Different namespaces. */
        "  - {name: a, match: {namespaces: [ml]}}\n"
        "  - {name: b, match: {namespaces: [ml-dev]}}\n",
        /* B has a namespace A lacks. */
        "  - {name: a, match: {namespaces: [ml]}}\n"
        "  - {name: b, match: {namespaces: [ml, other]}}\n",
        /* Same label key, another value. */
        "  - {name: a, match: {labels: {team: x}}}\n"
        "  - {name: b, match: {labels: {team: y}}}\n",
        /* A needs a priority class B does not ask for. */
        "  - {name: a, match: {priorityClassNames: [high], namespaces: [ml]}}\n"
        "  - {name: b, match: {namespaces: [ml]}}\n",
    };

    for (size_t i = 0; i < sizeof(shadowed) / sizeof(shadowed[0]); i++) {
        char *text = fmt("%srules:\n%s", HEAD, shadowed[i]);
        expect_error(text, "p.yaml:5:5: rules[1]: can never match: rule \"ml-all\" (line 4) "
                           "selects every pod this one does");
        free(text);
    }
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
        char *text = fmt("%srules:\n%s", HEAD, fine[i]);
        policy_unref(expect_ok(text));
        free(text);
    }
    /* Only the first rule that shadows is named. */
    expect_error(HEAD "rules:\n  - {name: x, match: {namespaces: [a]}}\n"
                      "  - {name: y, match: {namespaces: [a, b]}}\n"
                      "  - {name: z, match: {namespaces: [a]}}\n",
                 "p.yaml:6:5: rules[2]: can never match: rule \"x\" (line 4) selects every pod "
                 "this one does");
}

static void test_allow_errors(void)
{
    expect_error(HEAD CLASSES "rules:\n  - name: r\n    match: {namespaces: [a]}\n"
                              "    allow: [t4, a100]\n    forbid: [a100, t4, h100]\n",
                 "p.yaml:10:12: rules[0].allow: allows nothing: every class in it is also in "
                 "forbid");
    expect_error(HEAD CLASSES "default:\n  allow: [t4]\n  forbid: [t4]\n",
                 "p.yaml:8:10: default.allow: allows nothing: every class in it is also in "
                 "forbid");
    expect_error(HEAD CLASSES "default:\n  forbid: [t4]\n  prefer:\n    - class: h100\n"
                              "    - class: t4\n",
                 "p.yaml:11:14: default.prefer[1].class: can never apply: class \"t4\" is in "
                 "forbid");
    expect_error(HEAD CLASSES "default:\n  allow: [h100]\n  prefer:\n    - class: a100\n",
                 "p.yaml:10:14: default.prefer[0].class: can never apply: class \"a100\" is not "
                 "in allow");
    expect_error(HEAD CLASSES "default:\n  prefer:\n    - class: a100\n    - class: h100\n"
                              "    - {class: a100, weight: 3}\n",
                 "p.yaml:11:15: default.prefer[2].class: duplicate class \"a100\" (first at "
                 "prefer[0])");
    expect_error(HEAD "default: {topology: {minGPUs: 1, require: NVLink}}\n",
                 "p.yaml:3:31: default.topology.minGPUs: must be 2..4096, got 1");
}

static void test_document_errors(void)
{
    static const char *const missing[] = {
        "p.yaml:1:1: apiVersion: required key is missing",
        "p.yaml:1:1: kind: required key is missing",
    };
    const char *msg;
    struct policy *p = NULL;
    struct policy_diag diag;

    expect_error("", "p.yaml:1:1: the policy is empty; it needs at least apiVersion and kind");
    expect_error("# only a comment\n",
                 "p.yaml:1:1: the policy is empty; it needs at least apiVersion and kind");
    expect_error("---\n", "p.yaml:2:1: the policy is empty; it needs at least apiVersion and kind");
    expect_error("- a\n- b\n", "p.yaml:1:1: expected a mapping at the top level, got a sequence");
    expect_errors("{}\n", ERR_INVALID, missing, 2);
    expect_error(HEAD "scoring:\n  weights:\n    freeGPUs: 0\n    model: 0\n    topology: 0\n",
                 "p.yaml:5:5: scoring.weights: every weight is 0, so all nodes would score the "
                 "same; set at least one above 0");
    expect_error(HEAD "scoring:\n  weights:\n    freeGPUs: 0\n    model: 0\n    topology: 0\n"
                      "    scarcity: 0\n",
                 "p.yaml:5:5: scoring.weights: every weight is 0, so all nodes would score the "
                 "same; set at least one above 0");

    msg = "p.yaml:4:1: invalid YAML: could not find expected ':' (while scanning a simple key at "
          "3:1)";
    expect_errors(HEAD "scoring\nfoo: 1\n", ERR_PARSE, &msg, 1);
    msg = "p.yaml:3:1: only one YAML document is allowed";
    expect_errors(HEAD "---\n" HEAD, ERR_PARSE, &msg, 1);

    /* policy_parse() takes a length, not a C string. */
    CHECK_EQ(policy_parse("p.yaml", HEAD "scoring: {strategy: spread}", strlen(HEAD), &p, &diag),
             ERR_OK);
    CHECK_EQ(p->strategy, POLICY_BINPACK);
    CHECK_EQ(p->text_len, strlen(HEAD));
    CHECK_STR_EQ(p->text, HEAD);
    policy_unref(p);
    CHECK_EQ(policy_parse("p.yaml", HEAD, strlen(HEAD), &p, NULL), ERR_OK);
    policy_unref(p);
    CHECK_EQ(policy_parse("p.yaml", "kind: x", 7, &p, NULL), ERR_INVALID);
    CHECK_EQ(policy_parse("p.yaml", NULL, 0, &p, &diag), ERR_INVALID);
    CHECK_EQ(diag.count, 1);
}

/* Every problem in one pass, in file order, then the checks that need the whole file. */
static void test_many_errors(void)
{
    static const char text[] = HEAD "scoring:\n"                                   /* 3 */
                                    "  strategy: sideways\n"                       /* 4 */
                                    "  weights:\n"                                 /* 5 */
                                    "    freeGPUs: 101\n"                          /* 6 */
                                    "    model: many\n"                            /* 7 */
                                    "    extra: 1\n"                               /* 8 */
                                    "podOverrides:\n"                              /* 9 */
                                    "  strategy: maybe\n"                          /* 10 */
                                    "classes:\n"                                   /* 11 */
                                    "  - {name: h100, products: [NVIDIA-H100*]}\n" /* 12 */
                                    "  - {name: h100, families: [hopper]}\n"       /* 13 */
                                    "  - {name: t4}\n"                             /* 14 */
                                    "rules:\n"                                     /* 15 */
                                    "  - name: ml\n"                               /* 16 */
                                    "    match: {namespaces: [ml]}\n"              /* 17 */
                                    "    allow: [h100, a100]\n"                    /* 18 */
                                    "  - name: ml-train\n"                         /* 19 */
                                    "    match: {namespaces: [ml], labels: {a: b}}\n"
                                    "    topology: {minGPUs: 1, require: NVLink}\n" /* 21 */
                                    "colour: blue\n";                               /* 22 */
    static const char *const msgs[] = {
        "p.yaml:4:13: scoring.strategy: expected binpack or spread, got \"sideways\"",
        "p.yaml:6:15: scoring.weights.freeGPUs: must be 0..100, got 101",
        "p.yaml:7:12: scoring.weights.model: expected an integer 0..100, got \"many\"",
        "p.yaml:8:5: scoring.weights.extra: unknown key (known keys here: freeGPUs, model, "
        "topology, scarcity)",
        "p.yaml:10:13: podOverrides.strategy: expected true or false, got \"maybe\"",
        "p.yaml:13:12: classes[1].name: duplicate class name \"h100\" (first at line 12)",
        "p.yaml:14:5: classes[2]: matches no node: give at least one of products, families or "
        "minMemoryMiB",
        "p.yaml:21:25: rules[1].topology.minGPUs: must be 2..4096, got 1",
        "p.yaml:19:5: rules[1]: can never match: rule \"ml\" (line 16) selects every pod this one "
        "does",
        "p.yaml:22:1: colour: unknown key (known keys here: " KNOWN_TOP ")",
        "p.yaml:18:19: rules[0].allow[1]: undefined class \"a100\" (defined classes: h100, t4)",
    };

    expect_errors(text, ERR_INVALID, msgs, sizeof(msgs) / sizeof(msgs[0]));
}

/* Past POLICY_MAX_ERRORS the rest is dropped, but the load still fails. */
static void test_error_cap(void)
{
    char text[4096];
    size_t used = (size_t)snprintf(text, sizeof(text), "%s", HEAD);
    struct policy *p = NULL;
    struct policy_diag diag;

    for (int i = 0; i < 50; i++)
        used += (size_t)snprintf(text + used, sizeof(text) - used, "unknown%d: 1\n", i);
    CHECK_EQ(parse(text, &p, &diag), ERR_INVALID);
    CHECK_EQ(diag.count, POLICY_MAX_ERRORS);
    CHECK_STR_EQ(diag.msgs[POLICY_MAX_ERRORS - 1],
                 "p.yaml:22:1: unknown19: unknown key (known keys here: " KNOWN_TOP ")");
    CHECK(p == NULL);
}

static void test_names(void)
{
    char name[1000];
    struct policy *p = NULL;
    struct policy_diag diag;

    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    CHECK_EQ(policy_parse(name, HEAD, strlen(HEAD), &p, &diag), ERR_OK);
    CHECK_EQ(strlen(p->source), sizeof(p->source) - 1);
    policy_unref(p);
    CHECK_EQ(policy_parse(name, "x: 1", 4, &p, &diag), ERR_INVALID);
    CHECK(strlen(diag.msgs[0]) < sizeof(diag.msgs[0]));
    CHECK(strstr(diag.msgs[0], ":1:1: x: unknown key") != NULL);
    CHECK_EQ(policy_parse(NULL, HEAD, strlen(HEAD), &p, &diag), ERR_OK);
    CHECK_STR_EQ(p->source, "(policy)");
    policy_unref(p);
}

static void test_load_errors(void)
{
    char dir[] = "/tmp/gx-policy-XXXXXX";
    char path[64];
    struct policy *p = NULL;
    struct policy_diag diag;
    FILE *f;

    CHECK_EQ(policy_load("/nonexistent/gx/policy.yaml", &p, &diag), ERR_IO);
    CHECK_EQ(diag.count, 1);
    CHECK(strstr(diag.msgs[0], "/nonexistent/gx/policy.yaml: cannot open") != NULL);

    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/big.yaml", dir);
    f = fopen(path, "wb");
    CHECK(f != NULL);
    fputs(HEAD, f);
    for (size_t i = 0; i < POLICY_MAX_FILE_BYTES / 16; i++)
        fputs("# padding line.\n", f); /* 16 bytes; with HEAD just past the cap */
    CHECK_EQ(fclose(f), 0);
    CHECK_EQ(policy_load(path, &p, &diag), ERR_TOO_LARGE);
    CHECK_EQ(diag.count, 1);
    CHECK(strstr(diag.msgs[0], "file is larger than 1048576 bytes") != NULL);
    CHECK_EQ(policy_load(dir, &p, &diag), ERR_IO); /* a directory cannot be read */
    CHECK(p == NULL);
    CHECK_EQ(unlink(path), 0);
    CHECK_EQ(rmdir(dir), 0);
}

int main(void)
{
    test_type_errors();
    test_enum_errors();
    test_key_errors();
    test_name_errors();
    test_pattern_errors();
    test_class_errors();
    test_rule_name_errors();
    test_undefined_classes();
    test_list_errors();
    test_match_errors();
    test_shadowed_rules();
    test_allow_errors();
    test_document_errors();
    test_many_errors();
    test_error_cap();
    test_names();
    test_load_errors();
    printf("test_policy_errors: ok\n");
    return 0;
}
