//! Triage quality on the multilingual evaluation set, through the same code
//! as `firstreply eval`: the targets, held as regression floors.

use firstreply::eval::{evaluate, read_labelled};

use crate::helpers::{pipeline, repo};

#[test]
fn multilingual_triage_meets_its_targets() {
    let rows = read_labelled(&repo().join("tests/data/eval-multilingual.jsonl")).unwrap();
    let evaluation = evaluate(&pipeline(), &rows, 1).unwrap();
    let summary = evaluation.summary();
    let report = evaluation.render();
    println!("{report}");
    let floors = [
        ("intent macro-F1", summary.macro_f1, MACRO_F1),
        ("P1 recall", summary.p1_recall, P1_RECALL),
        ("auto-reply precision", summary.auto_reply_precision, 0.98),
        ("auto-reply coverage", summary.auto_reply_coverage, 0.5),
        (
            "calibration error (lower is better)",
            1.0 - summary.ece,
            1.0 - ECE,
        ),
        (
            "sentiment polarity",
            summary.polarity_accuracy.unwrap(),
            POLARITY,
        ),
        (
            "language identification",
            summary.language_id.unwrap(),
            0.98,
        ),
    ];
    for (name, value, floor) in floors {
        assert!(value >= floor, "{name}: {value:.3} < {floor}\n{report}");
    }
    for (language, figures) in &summary.per_language {
        assert!(
            figures.macro_f1 >= LANGUAGE_MACRO_F1,
            "{language}: macro-F1 {:.3} < {LANGUAGE_MACRO_F1}\n{report}",
            figures.macro_f1
        );
    }
}

// Floors a little under what the set measures today (README, "Measuring
// quality"). Where a floor is under the issue's target, the target is not met
// yet: P1 recall (target 0.97, measured 0.94) and sentiment polarity (target
// 0.85, measured 0.57: the lexicon misses implicit complaints such as "still
// not arrived").
const MACRO_F1: f64 = 0.85;
const LANGUAGE_MACRO_F1: f64 = 0.75;
const P1_RECALL: f64 = 0.9;
const ECE: f64 = 0.1;
const POLARITY: f64 = 0.5;
