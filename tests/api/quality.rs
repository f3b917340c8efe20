//! Triage quality on the multilingual evaluation sets, through the same code
//! as `firstreply eval`, held as regression floors. The development set is
//! what examples and settings were tuned on; the hold-out sets were written
//! apart, each by someone who saw no example and no other set, so their
//! figures are the ones to expect on unseen inquiries (README, "Measuring
//! quality").

use firstreply::eval::{evaluate, read_labelled, Summary};

use crate::helpers::{pipeline, repo};

/// Floors a little under what a set measures today.
struct Floors {
    macro_f1: f64,
    language_macro_f1: f64,
    p1_recall: f64,
    auto_reply_precision: f64,
    auto_reply_coverage: f64,
    ece: f64,
    polarity: f64,
    /// Per language, for the languages the sentiment target names.
    language_polarity: f64,
}

/// Where the read sets are: they teach the classifier now, and evaluating
/// one leaves all of it out (the others stay in).
const READ: &str = "knowledge-base/intents/sets";
/// Where the sets not read yet are.
const UNREAD: &str = "tests/data";

fn check(file: &str, floors: &Floors) {
    let dir = if repo().join(UNREAD).join(file).exists() {
        UNREAD
    } else {
        READ
    };
    let rows = read_labelled(&repo().join(dir).join(file)).unwrap();
    let evaluation = evaluate(&pipeline(), &rows, 1).unwrap();
    let summary: Summary = evaluation.summary();
    let report = evaluation.render();
    println!("{file}\n{report}");
    let checks = [
        ("intent macro-F1", summary.macro_f1, floors.macro_f1),
        ("P1 recall", summary.p1_recall, floors.p1_recall),
        (
            "auto-reply precision",
            summary.auto_reply_precision,
            floors.auto_reply_precision,
        ),
        (
            "auto-reply coverage",
            summary.auto_reply_coverage,
            floors.auto_reply_coverage,
        ),
        (
            "calibration error (lower is better)",
            1.0 - summary.ece,
            1.0 - floors.ece,
        ),
        (
            "sentiment polarity",
            summary.polarity_accuracy.unwrap(),
            floors.polarity,
        ),
        (
            "language identification",
            summary.language_id.unwrap(),
            0.98,
        ),
    ];
    for (name, value, floor) in checks {
        assert!(
            value >= floor,
            "{file}: {name}: {value:.3} < {floor}\n{report}"
        );
    }
    assert_eq!(summary.per_language.len(), 13, "{file}: 13 languages");
    for (language, figures) in &summary.per_language {
        assert!(
            figures.macro_f1 >= floors.language_macro_f1,
            "{file}: {language}: macro-F1 {:.3} < {}\n{report}",
            figures.macro_f1,
            floors.language_macro_f1
        );
        if ["en", "de", "fr", "es", "ja", "zh"].contains(&language.as_str()) {
            let polarity = figures.polarity_accuracy.unwrap();
            assert!(
                polarity >= floors.language_polarity,
                "{file}: {language}: polarity {polarity:.3} < {}\n{report}",
                floors.language_polarity
            );
        }
    }
}

#[test]
fn development_set_holds_its_tuned_figures() {
    // Measured: macro-F1 0.927, P1 recall 0.948, auto-reply 1.000 / 0.833,
    // ECE 0.032, polarity 0.932, every language ≥ 0.84. Session 6: macro-F1
    // 0.944, P1 0.958, auto-reply 1.000 / 0.821, ECE 0.037, Korean 0.872.
    // Session 7 (linear head, 390 more examples): macro-F1 0.961, auto-reply
    // 1.000 / 0.859, ECE 0.021, Chinese 0.90 the lowest. Session 9 (gapped
    // threat phrases, urgent-probability tier, 221 examples): macro-F1 0.966,
    // P1 0.979, auto-reply 1.000 / 0.846, Spanish 0.91 the lowest; with 1,164
    // broad examples and more phrases: macro-F1 0.978, Chinese 0.92.
    check(
        "eval-multilingual.jsonl",
        &Floors {
            macro_f1: 0.965,
            language_macro_f1: 0.89,
            p1_recall: 0.98,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.79,
            ece: 0.03,
            polarity: 0.895,
            language_polarity: 0.865,
        },
    );
}

#[test]
fn hold_out_set_holds_its_unseen_figures() {
    // Measured once, before anything was tuned on it: macro-F1 0.900, P1
    // recall 0.948, auto-reply 0.964 / 0.692, ECE 0.029, polarity 0.914,
    // Korean macro-F1 0.707 the lowest. Session 6 (more examples, complaint
    // keywords; two of its wrongly auto-replied rows were shown to the keyword
    // writer): macro-F1 0.917, P1 0.969, auto-reply 0.981 / 0.654, Korean
    // 0.765 the lowest. Under the issue's targets where the README says so.
    // Session 7 (linear head, 390 more examples): macro-F1 0.953, P1 0.959,
    // auto-reply 1.000 / 0.692, ECE 0.021, Korean 0.81 the lowest. Session 9:
    // macro-F1 0.959, P1 1.000, auto-reply 1.000 / 0.654, Korean 0.79; at
    // the session's end 0.967, P1 0.990, Korean 0.84.
    check(
        "eval-multilingual-holdout.jsonl",
        &Floors {
            macro_f1: 0.96,
            language_macro_f1: 0.87,
            p1_recall: 0.98,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.675,
            ece: 0.03,
            polarity: 0.91,
            language_polarity: 0.815,
        },
    );
}

#[test]
fn second_and_third_hold_out_sets_hold_their_figures() {
    // Set 2, measured once before anything was tuned on it: macro-F1 0.875,
    // P1 0.980, auto-reply 1.000 / 0.590. Session 6: macro-F1 0.882, P1
    // 0.980, auto-reply 0.978 / 0.577, ECE 0.029, polarity 0.963, Italian
    // 0.797 the lowest. Session 7 (linear head, 390 more examples): macro-F1
    // 0.930, P1 1.000, auto-reply 0.979 / 0.590, ECE 0.047, English and
    // Polish 0.84.
    check(
        "eval-multilingual-holdout-2.jsonl",
        &Floors {
            macro_f1: 0.955,
            language_macro_f1: 0.845,
            p1_recall: 0.98,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.69,
            ece: 0.03,
            polarity: 0.925,
            language_polarity: 0.795,
        },
    );
    // Set 3, measured once: macro-F1 0.872, P1 0.933, auto-reply 0.981 /
    // 0.667. Session 6 (nothing of it seen): macro-F1 0.891, P1 0.952,
    // auto-reply 0.981 / 0.667, ECE 0.021, polarity 0.886, Spanish 0.735 the
    // lowest. Session 7 (linear head, 390 more examples): macro-F1 0.910, P1
    // 0.962, auto-reply 0.981 / 0.679, ECE 0.035, Dutch 0.72 the lowest.
    check(
        "eval-multilingual-holdout-3.jsonl",
        &Floors {
            macro_f1: 0.945,
            language_macro_f1: 0.79,
            p1_recall: 0.98,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.61,
            ece: 0.02,
            polarity: 0.925,
            language_polarity: 0.87,
        },
    );
}

#[test]
fn fourth_hold_out_set_holds_its_unseen_figures() {
    // Session 7, written by someone who read only DOMAIN.md, measured once
    // with the linear head in place: macro-F1 0.896, P1 0.952, auto-reply
    // 0.912 / 0.667 (under the 0.98 target: product questions that mention a
    // gift date read as shipping_status), ECE 0.060, polarity 0.911,
    // Japanese 0.75 the lowest. With 390 examples aimed at those kinds of
    // error (written without seeing it): macro-F1 0.904, P1 0.942,
    // auto-reply 0.963 / 0.667, ECE 0.047, Dutch 0.71 the lowest. Session 9:
    // macro-F1 0.932, P1 0.990, auto-reply 0.962 / 0.641, German 0.85; at
    // the session's end (what comes in the box is a product question):
    // 0.961, P1 0.990, auto-reply 1.000 / 0.628, Malay 0.86.
    check(
        "eval-multilingual-holdout-4.jsonl",
        &Floors {
            macro_f1: 0.965,
            language_macro_f1: 0.92,
            p1_recall: 0.98,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.65,
            ece: 0.035,
            polarity: 0.945,
            language_polarity: 0.865,
        },
    );
}

#[test]
fn fifth_hold_out_set_holds_its_unseen_figures() {
    // Session 8, written by someone who read only DOMAIN.md, measured once:
    // macro-F1 0.897, P1 0.802, auto-reply 0.912 / 0.667, ECE 0.049,
    // polarity 0.873, Dutch 0.74 the lowest. Its P1 misses included product
    // hazards, taken-over accounts and polite review or authority threats:
    // with the risk and threat phrases (written without seeing it) P1 0.881.
    // French polarity is 3 of 5 clearly polar rows. Auto-replying from an
    // intent confidence of 0.9 instead of 0.65: precision 0.978 / coverage
    // 0.577 (every set's coverage fell 5-9 points); with a product question
    // also asked handed to a person, 0.977 / 0.538. Session 9 (its wrong
    // auto-replies were read): macro-F1 0.915, P1 0.950, auto-reply 1.000 /
    // 0.615, ECE 0.057, German 0.71 the lowest; at the session's end 0.941,
    // P1 0.980, auto-reply 1.000 / 0.628, Dutch 0.74.
    check(
        "eval-multilingual-holdout-5.jsonl",
        &Floors {
            macro_f1: 0.92,
            language_macro_f1: 0.69,
            p1_recall: 0.97,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.65,
            ece: 0.055,
            polarity: 0.945,
            language_polarity: 0.795,
        },
    );
}

#[test]
fn sixth_hold_out_set_holds_its_unseen_figures() {
    // Session 9, written by someone who read only DOMAIN.md, measured once
    // (gapped threat phrases already in): macro-F1 0.900, P1 0.957,
    // auto-reply 0.980 / 0.615, ECE 0.060, polarity 0.890, German 0.785 the
    // lowest. Its misses were then read: angry late parcels read as
    // complaints, exchanges as product questions. With keywords, 221
    // examples of those kinds (written by someone who saw no set) and the
    // urgent-probability tier: macro-F1 0.917, P1 0.974, auto-reply 0.982 /
    // 0.705, ECE 0.042, German 0.70 the lowest. At the session's end
    // (broad examples, threat keywords outside the ask, negative hazards):
    // 0.943, P1 0.991, auto-reply 0.982 / 0.692, polarity 0.930, German 0.81.
    check(
        "eval-multilingual-holdout-6.jsonl",
        &Floors {
            macro_f1: 0.94,
            language_macro_f1: 0.77,
            p1_recall: 0.98,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.7,
            ece: 0.04,
            polarity: 0.94,
            language_polarity: 0.87,
        },
    );
}

#[test]
fn seventh_hold_out_set_holds_its_unseen_figures() {
    // Session 9, written by someone who read only DOMAIN.md, measured once
    // at the end of the session's quality work: macro-F1 0.925, P1 0.926,
    // auto-reply 0.979 / 0.590, ECE 0.038, polarity 0.832, Italian 0.785
    // the lowest. Its misses were then read (a taken-over account, threats
    // in conjugations the phrases lacked, Manglish read as Tagalog, calm
    // hazard reports read as neutral): macro-F1 0.934, P1 0.981, auto-reply
    // 1.000 / 0.590, ECE 0.041, polarity 0.864, French 0.81 the lowest.
    check(
        "eval-multilingual-holdout-7.jsonl",
        &Floors {
            macro_f1: 0.92,
            language_macro_f1: 0.77,
            p1_recall: 0.95,
            auto_reply_precision: 0.96,
            auto_reply_coverage: 0.625,
            ece: 0.05,
            polarity: 0.92,
            language_polarity: 0.825,
        },
    );
}

#[test]
fn eighth_hold_out_set_holds_its_unseen_figures() {
    // Session 10, written by someone who read only DOMAIN.md, measured once
    // before anything of the session was in: macro-F1 0.959, P1 0.975,
    // auto-reply 0.978 / 0.564, ECE 0.028, polarity 0.949, language-id
    // 1.000, Spanish 0.843 the lowest. Then (its two P1 misses and one wrong
    // auto-reply read and mended in general form: a German takeover phrase,
    // Polish compatibility questions; a sure complaint reads negative; 475
    // examples and 676 sentiment examples written by someone who saw no
    // set): macro-F1 0.958, P1 0.983, auto-reply 1.000 / 0.590, ECE 0.025,
    // polarity 0.985, Spanish 0.84 the lowest. Session 12: auto-reply
    // 1.000 / 0.551 (two more shipping questions handed off).
    check(
        "eval-multilingual-holdout-8.jsonl",
        &Floors {
            macro_f1: 0.945,
            language_macro_f1: 0.8,
            p1_recall: 0.97,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.535,
            ece: 0.045,
            polarity: 0.955,
            language_polarity: 0.85,
        },
    );
}

#[test]
fn ninth_hold_out_set_holds_its_unseen_figures() {
    // Session 10, written by someone who read only DOMAIN.md, measured once
    // at the end of the session's quality work: macro-F1 0.965, P1 0.991,
    // auto-reply 0.980 / 0.615, ECE 0.015, polarity 0.961, language-id
    // 0.990, every language 0.915 or more. Its misses were then read (refund
    // status told through the return parcel's tracking, product questions
    // after ordering, a wrong colour read as a parcel question and answered):
    // macro-F1 0.976, P1 1.000, auto-reply 1.000 / 0.590, polarity 0.969.
    check(
        "eval-multilingual-holdout-9.jsonl",
        &Floors {
            macro_f1: 0.96,
            language_macro_f1: 0.895,
            p1_recall: 0.98,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.52,
            ece: 0.035,
            polarity: 0.935,
            language_polarity: 0.835,
        },
    );
}

#[test]
fn tenth_hold_out_set_holds_its_unseen_figures() {
    // Session 10, written by someone who read only DOMAIN.md (seasonal
    // pressure, subscriptions and pre-orders, buyers writing for someone
    // else), measured once on the session's final build: macro-F1 0.963,
    // P1 0.940, auto-reply 1.000 / 0.577, ECE 0.020, polarity 0.948,
    // language-id 0.997, Spanish 0.912 the lowest. Its seven P1 misses were
    // then read (hazards, a bank-dispute threat and cancellations in words
    // the phrases lacked) and mended in general form: macro-F1 0.968, P1
    // 1.000, auto-reply 1.000 / 0.577, polarity 0.948.
    check(
        "eval-multilingual-holdout-10.jsonl",
        &Floors {
            macro_f1: 0.935,
            language_macro_f1: 0.845,
            p1_recall: 0.98,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.56,
            ece: 0.045,
            polarity: 0.93,
            language_polarity: 0.855,
        },
    );
}

#[test]
fn eleventh_hold_out_set_holds_its_unseen_figures() {
    // Session 10, written by someone who read only DOMAIN.md (at least three
    // rows per language raised to P1 by a threat, a hazard told in everyday
    // words, a taken-over account or fury), measured once on the final build
    // before its extra hazard and threat phrases: macro-F1 0.981, P1 0.940,
    // auto-reply 0.980 / 0.641, ECE 0.008, polarity 0.966; with them, still
    // unread: P1 0.949. Its misses were then read and mended in general form:
    // macro-F1 0.986, P1 1.000, auto-reply 1.000 / 0.628.
    check(
        "eval-multilingual-holdout-11.jsonl",
        &Floors {
            macro_f1: 0.97,
            language_macro_f1: 0.845,
            p1_recall: 0.98,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.635,
            ece: 0.025,
            polarity: 0.94,
            language_polarity: 0.835,
        },
    );
}

#[test]
fn twelfth_hold_out_set_holds_its_unseen_figures() {
    // Session 11, written like set 11 (at least three rows per language
    // raised to P1 from a category that is not), measured before its rows
    // were read: on the session-10 build macro-F1 0.934, P1 0.892, auto-reply
    // 1.000 / 0.590; with the risk head, P1 0.985 at P1 precision 0.859
    // (0.879 without), auto-reply 1.000 / 0.577, ECE 0.049, polarity 0.966,
    // lowest language Spanish 0.74.
    check(
        "eval-multilingual-holdout-12.jsonl",
        &Floors {
            macro_f1: 0.95,
            language_macro_f1: 0.845,
            p1_recall: 0.98,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.6,
            ece: 0.04,
            polarity: 0.945,
            language_polarity: 0.875,
        },
    );
}

#[test]
fn thirteenth_hold_out_set_holds_its_unseen_figures() {
    // Session 11, written by someone who read only DOMAIN.md (voice
    // transcripts, quoted replies, several questions in one, buyers writing
    // for someone else; at least three raised rows per language), measured
    // once on the final build before its rows were read: macro-F1 0.928, P1
    // 0.992 (0.933 with the risk head off), auto-reply 1.000 / 0.577, ECE
    // 0.040, polarity 0.925 (English 0.82), lowest language Chinese 0.73.
    check(
        "eval-multilingual-holdout-13.jsonl",
        &Floors {
            macro_f1: 0.965,
            language_macro_f1: 0.905,
            p1_recall: 0.98,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.545,
            ece: 0.025,
            polarity: 0.9,
            language_polarity: 0.765,
        },
    );
}

#[test]
fn fourteenth_hold_out_set_holds_its_unseen_figures() {
    // Session 12, written by someone who read only DOMAIN.md, measured once
    // before its rows were read, with the session's first boundary examples:
    // macro-F1 0.960 (0.960 too without them), P1 1.000 / 0.836, auto-reply
    // 1.000 / 0.590, ECE 0.011, polarity 0.972, lowest language French 0.82.
    check(
        "eval-multilingual-holdout-14.jsonl",
        &Floors {
            macro_f1: 0.965,
            language_macro_f1: 0.9,
            p1_recall: 0.98,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.56,
            ece: 0.035,
            polarity: 0.93,
            language_polarity: 0.75,
        },
    );
}

#[test]
fn fifteenth_hold_out_set_holds_its_unseen_figures() {
    // Session 12: 624 rows, 48 per language (twice the others), written by
    // two people who read only DOMAIN.md. Measured before its rows were read,
    // on the build with session 12's first boundary examples: macro-F1 0.933
    // (0.914 without them), P1 0.976; then with the second batch: macro-F1
    // 0.941, P1 0.976 / 0.868, auto-reply 0.989 / 0.571, ECE 0.024, polarity
    // 0.943, lowest language Chinese 0.85.
    check(
        "eval-multilingual-holdout-15.jsonl",
        &Floors {
            macro_f1: 0.94,
            language_macro_f1: 0.89,
            p1_recall: 0.97,
            auto_reply_precision: 0.955,
            auto_reply_coverage: 0.54,
            ece: 0.035,
            polarity: 0.93,
            language_polarity: 0.85,
        },
    );
}

#[test]
fn sixteenth_hold_out_set_holds_its_unseen_figures() {
    // Session 12, written by two people who read only DOMAIN.md, measured
    // before its rows were read: macro-F1 0.970 without the session's third
    // batch of boundary examples (Chinese 0.80, French 0.84), 0.978 with it
    // (every language 0.86 or more); P1 0.983 -> 0.992 with the conjugated
    // bank-dispute phrases; auto-reply 1.000 / 0.538, ECE 0.023, polarity
    // 0.973 (Chinese 0.82).
    check(
        "eval-multilingual-holdout-16.jsonl",
        &Floors {
            macro_f1: 0.96,
            language_macro_f1: 0.84,
            p1_recall: 0.97,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.545,
            ece: 0.03,
            polarity: 0.96,
            language_polarity: 0.95,
        },
    );
}

#[test]
fn seventeenth_hold_out_set_holds_its_figures() {
    // Session 12: 624 rows (48 per language) written by two people who read
    // only DOMAIN.md and were asked for what a classifier finds hard: mixed
    // requests, indirect wording, returns and cancellations never named.
    // Measured once, blind, on the build with the session's three batches:
    // macro-F1 0.890, P1 0.929 / 0.861, auto-reply 0.977 / 0.551, ECE 0.044,
    // polarity 0.940, Korean 0.74. Then, its misses read and mended in
    // general form (implicit returns and cancellations, indirect threats and
    // injuries in every language): macro-F1 0.894, P1 0.972 / 0.860,
    // auto-reply 0.977 / 0.545, ECE 0.037, polarity 0.947. Session 14
    // (sideways threats, refund and exchange boundaries): P1 0.984 / 0.801.
    check(
        "eval-multilingual-holdout-17.jsonl",
        &Floors {
            macro_f1: 0.905,
            language_macro_f1: 0.81,
            p1_recall: 0.975,
            auto_reply_precision: 0.945,
            auto_reply_coverage: 0.51,
            ece: 0.045,
            polarity: 0.925,
            language_polarity: 0.835,
        },
    );
}

#[test]
fn eighteenth_hold_out_set_holds_its_figures() {
    // Session 13: 624 rows written to be hard, as set 17, by two people who
    // read only DOMAIN.md and the labelling conventions. Measured blind on
    // session 12's build: macro-F1 0.875, P1 0.925 / 0.869, auto-reply
    // 1.000 / 0.545, ECE 0.049, polarity 0.851 (French 0.67). Its rows were
    // not read; the session's examples, written by people who saw no set,
    // took it to macro-F1 0.903, P1 0.951 / 0.860, auto-reply 1.000 / 0.551,
    // ECE 0.037, polarity 0.879. Session 14's examples (its rows not studied):
    // P1 0.970 / 0.834, auto-reply 1.000 / 0.513.
    check(
        "eval-multilingual-holdout-18.jsonl",
        &Floors {
            macro_f1: 0.905,
            language_macro_f1: 0.83,
            p1_recall: 0.965,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.5,
            ece: 0.045,
            polarity: 0.855,
            language_polarity: 0.74,
        },
    );
}

#[test]
fn nineteenth_hold_out_set_holds_its_figures() {
    // Session 13: 624 rows from the same brief by a third writer. Measured
    // blind on the build with the session's first batch: macro-F1 0.879,
    // P1 0.948 / 0.820, auto-reply 1.000 / 0.429 (angry and threatening
    // delivery questions hand off), ECE 0.048, polarity 0.871. Then its
    // misses were read and mended in general form: macro-F1 0.917, P1
    // 0.956 / 0.854, auto-reply 1.000 / 0.513, ECE 0.027, polarity 0.909.
    // Session 14: P1 0.980 / 0.836, auto-reply 1.000 / 0.506.
    check(
        "eval-multilingual-holdout-19.jsonl",
        &Floors {
            macro_f1: 0.9,
            language_macro_f1: 0.76,
            p1_recall: 0.97,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.51,
            ece: 0.06,
            polarity: 0.88,
            language_polarity: 0.83,
        },
    );
}

#[test]
fn twentieth_hold_out_set_holds_its_figures() {
    // Session 14: 624 rows from set 18's brief by two more writers, with
    // close calls that are not raised. Measured blind on session 13's final
    // build: macro-F1 0.888, P1 0.916 / 0.828, auto-reply 0.963 / 0.494,
    // ECE 0.051, polarity 0.910; and on session 14's, before it was read:
    // macro-F1 0.888, P1 0.956 / 0.801, auto-reply 0.986 / 0.436, ECE 0.054,
    // polarity 0.907 (French and English 0.81-0.82).
    check(
        "eval-multilingual-holdout-20.jsonl",
        &Floors {
            macro_f1: 0.915,
            language_macro_f1: 0.83,
            p1_recall: 0.96,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.385,
            ece: 0.05,
            polarity: 0.88,
            language_polarity: 0.735,
        },
    );
}

#[test]
fn twenty_first_hold_out_set_holds_its_figures() {
    // Session 15: 624 rows by two more writers, from set 20's brief plus
    // threats in each marketplace's own words buried in long polite
    // messages, and routine delivery questions. Measured blind on session
    // 14's build: macro-F1 0.940, P1 0.947 / 0.811, auto-reply 1.000 /
    // 0.577, ECE 0.028, polarity 0.949 (French 0.88), lowest language
    // Japanese 0.878. Its misses were then read; with the amounts, threat
    // and repeat-customer phrases written for them, P1 0.976 / 0.816.
    check(
        "eval-multilingual-holdout-21.jsonl",
        &Floors {
            macro_f1: 0.94,
            language_macro_f1: 0.865,
            p1_recall: 0.97,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.56,
            ece: 0.035,
            polarity: 0.925,
            language_polarity: 0.83,
        },
    );
}

#[test]
fn twenty_second_hold_out_set_holds_its_figures() {
    // Session 16: 624 rows by two more writers, from set 21's brief plus
    // tier-raising signals in many forms (regulars in their own words, amounts
    // in local notations, fury) and urgent asks hidden in other intents (an
    // exchange asked as a size question, a cancellation written as thanks, a
    // refund that never came asked as a payment question, a hazard or an
    // unknown order mentioned in passing). Measured blind on session 15's
    // build: macro-F1 0.892, P1 0.810 / 0.801, auto-reply 0.977 / 0.538, ECE
    // 0.069. Its misses were then read; with the examples and phrases written
    // for those kinds of message, P1 0.935 / 0.821, auto-reply 1.000 / 0.494.
    check(
        "eval-multilingual-holdout-22.jsonl",
        &Floors {
            macro_f1: 0.93,
            language_macro_f1: 0.885,
            p1_recall: 0.96,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.535,
            ece: 0.05,
            polarity: 0.915,
            language_polarity: 0.825,
        },
    );
}

#[test]
fn twenty_third_hold_out_set_holds_its_figures() {
    // Session 16: 624 rows from set 22's brief by two more writers. Measured
    // blind after the examples and phrases written for set 22's misses:
    // macro-F1 0.890, P1 0.907 / 0.778, auto-reply 0.975 / 0.506 (session
    // 15's build: P1 0.878). Its misses were then read; with the risk
    // examples and phrases written for them, P1 0.981 / 0.789, auto-reply
    // 1.000 / 0.474. Polish is its weakest language (macro-F1 0.77).
    check(
        "eval-multilingual-holdout-23.jsonl",
        &Floors {
            macro_f1: 0.91,
            language_macro_f1: 0.74,
            p1_recall: 0.96,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.485,
            ece: 0.05,
            polarity: 0.915,
            language_polarity: 0.825,
        },
    );
}

#[test]
fn twenty_fourth_hold_out_set_holds_its_figures() {
    // Session 16: 624 rows from set 22's brief by two more writers. Measured
    // blind after the work on sets 22 and 23: macro-F1 0.898, P1 0.901 /
    // 0.837, auto-reply 0.977 / 0.551 (session 15's build: P1 0.821). Its
    // misses were then read; with the phrases written for them, P1 0.967 /
    // 0.844, auto-reply 1.000 / 0.519.
    check(
        "eval-multilingual-holdout-24.jsonl",
        &Floors {
            macro_f1: 0.915,
            language_macro_f1: 0.835,
            p1_recall: 0.965,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.555,
            ece: 0.055,
            polarity: 0.905,
            language_polarity: 0.8,
        },
    );
}

#[test]
fn twenty_fifth_hold_out_set_holds_its_figures() {
    // Session 16: 624 rows from set 22's brief by two more writers, measured
    // blind after the work on sets 22-24: macro-F1 0.887, P1 0.908 / 0.805,
    // auto-reply 0.988 / 0.519 (session 15's build: P1 0.861, auto-reply
    // 0.965 / 0.532). Its misses were then read; with the phrases written
    // for them, P1 0.956 / 0.813, auto-reply 0.988 / 0.506 (80 replies, one
    // wrong). One Polish row carries no sentiment: its text is a shipped
    // sentiment example.
    check(
        "eval-multilingual-holdout-25.jsonl",
        &Floors {
            macro_f1: 0.9,
            language_macro_f1: 0.805,
            p1_recall: 0.955,
            auto_reply_precision: 0.965,
            auto_reply_coverage: 0.53,
            ece: 0.06,
            polarity: 0.895,
            language_polarity: 0.79,
        },
    );
}

#[test]
fn twenty_sixth_hold_out_set_holds_its_figures() {
    // Session 16: 624 rows from set 22's brief by two more writers, measured
    // blind at the end of the session: macro-F1 0.905, P1 0.918 / 0.822,
    // auto-reply 0.974 / 0.481 (77 replies, two wrong), ECE 0.045 (session
    // 15's build: P1 0.879, auto-reply 0.976 / 0.519). Session 17 (read
    // sets teaching, urgent 0.1, risk 0.1): macro-F1 0.932, P1 0.929 /
    // 0.813, auto-reply 0.976 / 0.532 (two wrong). Its P1 misses were read
    // after that measure; session 18 worked on their kinds (P1 0.972 /
    // 0.820) and moved it among the read sets.
    check(
        "eval-multilingual-holdout-26.jsonl",
        &Floors {
            macro_f1: 0.91,
            language_macro_f1: 0.83,
            p1_recall: 0.955,
            auto_reply_precision: 0.955,
            auto_reply_coverage: 0.475,
            ece: 0.055,
            polarity: 0.885,
            language_polarity: 0.78,
        },
    );
}

#[test]
fn twenty_seventh_hold_out_set_holds_its_figures() {
    // Session 17: 624 rows (266 P1) by two more writers from set 22's brief
    // with close calls that are not P1, measured blind on session 16's build
    // (macro-F1 0.928, P1 0.929 / 0.826, auto-reply 1.000 / 0.519) and on
    // session 17's (read sets teaching, urgent 0.1, risk 0.1): macro-F1
    // 0.932, P1 0.936 / 0.822, auto-reply 1.000 / 0.577; on session 18's:
    // macro-F1 0.936, P1 0.940 / 0.822, auto-reply 1.000 / 0.583 (the last
    // rule's effect here was counted before it was adopted). Read in
    // session 19 (an order the buyer never placed, an exchange asked as a
    // stock question) and moved among the read sets: leave-one-set-out.
    check(
        "eval-multilingual-holdout-27.jsonl",
        &Floors {
            macro_f1: 0.925,
            language_macro_f1: 0.855,
            p1_recall: 0.98,
            auto_reply_precision: 0.965,
            auto_reply_coverage: 0.515,
            ece: 0.05,
            polarity: 0.84,
            language_polarity: 0.65,
        },
    );
}

#[test]
fn twenty_eighth_hold_out_set_holds_its_figures() {
    // Session 18: 624 rows (260 P1) by two more writers from set 27's brief,
    // written before session 18's changes and measured blind on session
    // 17's build: macro-F1 0.940, P1 0.954 / 0.813, auto-reply 1.000 /
    // 0.615; on session 18's: macro-F1 0.935, P1 0.962 / 0.822, auto-reply
    // 1.000 / 0.635, ECE 0.037, polarity 0.962 (the last rule's effect here
    // was counted before it was adopted). Its P1 misses were read in
    // session 19, and it moved among the read sets: leave-one-set-out.
    check(
        "eval-multilingual-holdout-28.jsonl",
        &Floors {
            macro_f1: 0.93,
            language_macro_f1: 0.87,
            p1_recall: 0.98,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.6,
            ece: 0.045,
            polarity: 0.935,
            language_polarity: 0.87,
        },
    );
}

#[test]
fn twenty_ninth_hold_out_set_holds_its_figures() {
    // Session 19: 624 rows (261 P1) by two more writers from set 27's brief,
    // written before session 19's changes and measured blind on session
    // 18's build: macro-F1 0.935, P1 0.962 / 0.842, auto-reply 0.963 /
    // 0.667 (4 of 108 wrong); with the never-placed-order and
    // hidden-exchange phrases, P1 0.973 / 0.838. Its wrong auto-replies,
    // then its P1 misses were read (P1 0.992 / 0.858), and in session 20 it
    // moved among the read sets: leave-one-set-out.
    check(
        "eval-multilingual-holdout-29.jsonl",
        &Floors {
            macro_f1: 0.93,
            language_macro_f1: 0.84,
            p1_recall: 0.97,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.62,
            ece: 0.045,
            polarity: 0.9,
            language_polarity: 0.815,
        },
    );
}

#[test]
fn thirtieth_hold_out_set_holds_its_figures() {
    // Session 19: 624 rows (267 P1) by two more writers from set 27's brief,
    // written while session 19's changes were measured, and measured blind
    // once they were done: on session 18's build macro-F1 0.943, P1 0.936 /
    // 0.817, auto-reply 1.000 / 0.635; on session 19's macro-F1 0.951, P1
    // 0.959 / 0.839, auto-reply 1.000 / 0.635. Its P1 misses were read in
    // session 20, and it moved among the read sets: leave-one-set-out.
    check(
        "eval-multilingual-holdout-30.jsonl",
        &Floors {
            macro_f1: 0.93,
            language_macro_f1: 0.82,
            p1_recall: 0.965,
            auto_reply_precision: 0.98,
            auto_reply_coverage: 0.575,
            ece: 0.05,
            polarity: 0.89,
            language_polarity: 0.765,
        },
    );
}

#[test]
fn thirty_first_hold_out_set_holds_its_figures() {
    // Session 20: 616 rows (262 P1) by two more writers from set 27's brief,
    // written before session 20's changes and measured blind on session
    // 19's build: macro-F1 0.950, P1 0.981 / 0.832, auto-reply 0.979 /
    // 0.603; on session 20's (sentences read for risks, sets 29 and 30
    // teaching): macro-F1 0.961, P1 0.985 / 0.849, auto-reply 0.980 /
    // 0.622. Not read yet.
    check(
        "eval-multilingual-holdout-31.jsonl",
        &Floors {
            macro_f1: 0.94,
            language_macro_f1: 0.845,
            p1_recall: 0.96,
            auto_reply_precision: 0.955,
            auto_reply_coverage: 0.58,
            ece: 0.035,
            polarity: 0.92,
            language_polarity: 0.9,
        },
    );
}

#[test]
fn an_evaluated_sentiment_example_is_refused_only_where_polarity_is_measured() {
    // A shipped neutral sentiment example (knowledge-base/sentiment/en.toml),
    // not an intent example.
    let text = "Is the jacket waterproof?";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.jsonl");
    let row = |sentiment: &str| {
        format!(r#"{{"text": "{text}", "category": "product_question"{sentiment}}}"#)
    };
    std::fs::write(&file, row("")).unwrap();
    let rows = read_labelled(&file).unwrap();
    assert!(evaluate(&pipeline(), &rows, 1).is_ok());

    std::fs::write(&file, row(r#", "sentiment": "NEUTRAL""#)).unwrap();
    let rows = read_labelled(&file).unwrap();
    let Err(error) = evaluate(&pipeline(), &rows, 1) else {
        panic!("a measured polarity of a sentiment example was not refused");
    };
    assert!(
        format!("{error:#}").contains("sentiment example"),
        "{error:#}"
    );
}
