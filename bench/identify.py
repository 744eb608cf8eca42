"""Identity from head motion: every feature set x model kind side by side on one extracted cohort.

Prints, per (feature set, method): top-1 with its 95% bootstrap interval over participants, chance,
AUC and EER (t-norm) with intervals, usable frames per video, training seconds per participant;
then the paired differences of the best flow and the best baseline, the best per-frame baseline and
the non-density reference (interval, p, McNemar; both sides are chosen on the same scores, so these p are
unadjusted for the choice, as the runs quoted below were), and since 5 December 2026 the pre-specified
family beside them: every flow against every density baseline of its own feature set, Holm-adjusted over
top-1 and EER. Comparisons pair people by participant, never by position alone. Not a test: figures.
The paired top-1 intervals quoted below predate 6 December 2026, since when they also hold Newcombe's paired
score interval (dis_core.score.stats.paired_rate_interval) and read wider (seed 43's pooled flow minus pooled
Gaussian: +0.050 [-0.085, +0.185] then, [-0.116, +0.236] now); p is printed as the report prints it.

    python bench/identify.py --run /work/data/identify/run            # a `dis extract` output folder
        [--manifest M] [--only spectrum,frame] [--methods pflow,pgauss] [--cache DIR] [--truth] [--flow-seed S]
        [--excerpts 8,16,30]   # also identify from excerpts of 8, 16, 30 s of each test session

The split is the pipeline's by whole videos (dis_core.cohort.split.whole_video_rule): the manifest's split
column, else the last session listed held out (session 1 train, session 2 test for `dis phantom`). Features are built
by the library (dis_core.features.build.video_features) exactly as the pipeline builds them; flows
and baselines are fitted on the same rows. ``--truth`` replaces MediaPipe's rotations by the phantom's
truth CSVs (hidden frames stay missing): the ceiling of what the dynamics allow, for context only.

Measured 2026-12-05 (session 41) on seed 31 rendered again by the phantom of commit 6b08e6e (each session's AR
sway scaled by the process's stationary spread, so its amplitude varies between sessions; near-neighbour copies
as whole dyads), same flags, extracted by 5a388cd's code (68,359 of 72,000 frames with a face); 24 min for
render, extraction and this table. The rows that decide #12:

    frame/flow              40  0.875 [0.739, 0.975]  0.025  0.944 [0.919, 0.975]  0.129 [0.075, 0.175]      849    0.35
    frame/gaussian          40  0.850 [0.709, 0.950]  0.025  0.935 [0.910, 0.970]  0.150 [0.082, 0.187]      849    0.00
    lags/flow               40  0.875 [0.739, 0.975]  0.025  0.968 [0.939, 0.987]  0.050 [0.036, 0.125]      846    0.53
    lags/ar                 40  0.900 [0.769, 0.975]  0.025  0.968 [0.950, 0.979]  0.074 [0.050, 0.118]      846    0.00
    spectrum/pflow          40  0.975 [0.871, 1.000]  0.025  0.998 [0.993, 1.000]  0.018 [0.002, 0.037]      900    0.20
    spectrum/pgauss         40  0.975 [0.871, 1.000]  0.025  0.998 [0.991, 1.000]  0.020 [0.003, 0.040]      900    0.00
    spectrum/nn             40  0.925 [0.801, 1.000]  0.025  0.997 [0.993, 1.000]  0.017 [0.003, 0.036]      900    0.00
    windows/flow            40  0.800 [0.652, 0.901]  0.025  0.956 [0.908, 0.988]  0.096 [0.035, 0.175]      898    0.20
    best flow spectrum/pflow - best baseline spectrum/pgauss: top-1 +0.000 [+0.000, +0.000] p=1.000; EER
        -0.002 [-0.012, +0.006]; McNemar n10=0 n01=0 p=1.000
    best flow spectrum/pflow - best per-frame baseline lags/ar: top-1 +0.075 [+0.000, +0.175] p=0.088; EER
        -0.056 [-0.101, -0.031]; McNemar n10=3 n01=0 p=0.250

The goal's figures hold (top-1 0.975 >= 0.90, EER 0.018 <= 0.06); the pooled flow is level with its pooled
Gaussian, as on the earlier render: no flow ahead of its baseline.

The same extraction with session 42's code (a fresh cache; 3.3 min): the pooled flow's rows centred on the rows it
fits gave spectrum/pflow 0.975 [0.871, 1.000], EER 0.017 [0.002, 0.036], against pgauss as above: EER -0.003
[-0.013, +0.007], top-1 +0.000. Top-1 intervals now hold the jackknife over people too, which set some upper
bounds (frame/flow 0.875 [0.739, 1.000], lags/ar 0.900 [0.769, 1.000]); windows/flow, purged of 8 rows, 0.775
[0.610, 0.940], EER 0.099.

Measured again 2026-12-05 (later) on seed 31, rendered and extracted again by the tracker that keeps the
participant's face (dis_core.extract.landmarker.FaceTracker: 68,359 of 72,000 frames with a face, as before, none
refused as another's), after head_lags' fix; 28 min for render, extraction and this table, a bench on the other
core. The rows that decide #12 and head_lags:

    lags/flow               40  0.850 [0.709, 0.950]  0.025  0.972 [0.950, 0.988]  0.059 [0.037, 0.125]      846    0.66
    lags/gaussian           40  0.825 [0.681, 0.925]  0.025  0.971 [0.950, 0.985]  0.072 [0.045, 0.124]      846    0.00
    lags/ar                 40  0.850 [0.709, 0.950]  0.025  0.967 [0.943, 0.983]  0.081 [0.047, 0.132]      846    0.00
    spectrum/pflow          40  1.000 [0.912, 1.000]  0.025  0.997 [0.993, 1.000]  0.017 [0.003, 0.033]      900    0.29
    spectrum/pgauss         40  0.975 [0.871, 1.000]  0.025  0.997 [0.991, 1.000]  0.020 [0.005, 0.040]      900    0.02
    spectrum/nn             40  1.000 [0.912, 1.000]  0.025  0.998 [0.995, 1.000]  0.010 [0.001, 0.025]      900    0.00
    best flow spectrum/pflow - best baseline spectrum/pgauss: top-1 +0.025 [+0.000, +0.075] p=0.725; EER
        -0.003 [-0.015, +0.006]; McNemar n10=1 n01=0 p=1.000
    best flow spectrum/pflow - best per-frame baseline lags/ar: top-1 +0.150 [+0.050, +0.275] p=0.006; EER
        -0.065 [-0.122, -0.025]; McNemar n10=6 n01=0 p=0.031

Paired (compare_methods), flow minus baseline, AUC: frame flow - gaussian +0.0061 [-0.0003, +0.0110]; lags flow -
gaussian +0.0013 [-0.0095, +0.0121], flow - ar +0.0052 [-0.0140, +0.0222], cflow - ar -0.0081 [-0.0228, +0.0021];
windows flow - gaussian -0.0044 [-0.0127, +0.0006]; spectrum pflow - pgauss +0.0008 [-0.0005, +0.0029]. No
interval of top-1, AUC or EER excludes zero: no flow is ahead of its baseline on seed 31 either.

Measured again 2026-12-05 on seed 12, rendered and extracted again (the same 68,343 frames with a face), after
head_lags took its velocities and lags on the rotation group (they were differences of gain-scaled rotation-vector
coordinates) and top-1 intervals came to hold the Wilson interval of the rate (stats.proportion_interval). Every
other feature set's top-1, AUC and EER is as in the seed-12 table below to the last digit; its top-1 intervals
widen (0.975: [0.871, 1.000]; 0.950: [0.835, 1.000]; 0.925: [0.801, 1.000]; 0.875: [0.739, 0.975]; 0.850:
[0.709, 0.950]). The head_lags rows (4.6 min for the whole table, a clean-clone CI on the other core):

    lags/cflow              40  0.900 [0.769, 0.975]  0.025  0.953 [0.932, 0.969]  0.097 [0.071, 0.147]      845    0.61
    lags/flow               40  0.900 [0.769, 0.975]  0.025  0.972 [0.952, 0.988]  0.081 [0.033, 0.118]      845    0.87
    lags/maf                40  0.900 [0.769, 0.975]  0.025  0.952 [0.927, 0.976]  0.100 [0.065, 0.158]      845    0.44
    lags/gaussian           40  0.900 [0.769, 0.975]  0.025  0.973 [0.954, 0.987]  0.072 [0.036, 0.124]      845    0.00
    lags/ar                 40  0.900 [0.769, 0.975]  0.025  0.969 [0.946, 0.988]  0.082 [0.035, 0.125]      845    0.00
    best flow spectrum/pflow - best baseline spectrum/pgauss: top-1 +0.000 [+0.000, +0.000] p=1.000; EER
        -0.005 [-0.016, +0.002]; McNemar n10=0 n01=0 p=1.000
    best flow spectrum/pflow - best per-frame baseline lags/gaussian: top-1 +0.075 [+0.000, +0.175] p=0.088; EER
        -0.053 [-0.106, -0.012]; McNemar n10=3 n01=0 p=0.250

Paired on these matrices (compare_methods): lags flow - gaussian top-1 +0.000, AUC -0.0010 [-0.0090, +0.0054], EER
+0.008 [-0.023, +0.031]; flow - ar AUC +0.0035 [-0.0059, +0.0112]; cflow - ar AUC -0.0161 [-0.0384, -0.0018]; flow
- maf AUC +0.0202 [+0.0056, +0.0381]. The verdict stands: no flow ahead of its baseline (the conditional flow is
behind the autoregressive baseline in AUC).

Measured 2026-12-04 (late) on both cohorts rendered again by the face rule of that day (--swap-faces showed the
face of the participant a whole dyad on: never one's own nor a partner's; since 5 December phantom.render.face_of
is a seeded shuffle, under which the same command shows a partner's face in 12 of seed 12's 40 later sessions) and
extracted again: dis phantom --participants 40 --sessions 2 --duration 60 --fps 15 --seed 12 (and 31)
--swap-faces --rich-dynamics --camera-deg 8 --hidden-fraction 0.05 --near-neighbours 6, 640x480; 68,343
and 68,359 of 72,000 frames with a face. The default flows (HEAD_FLOW spline) beside the MAF flows they
replaced ("maf", "pmaf") and the pooled MAF started at random ("rflow"); columns as printed (N, top-1,
chance, AUC, EER, usable frames per video, training seconds per person, with a phantom rendering on the
other core). Seed 12:

    frame/flow              40  0.850 [0.725, 0.950]  0.025  0.907 [0.886, 0.956]  0.175 [0.089, 0.214]      848    0.46
    frame/maf               40  0.850 [0.725, 0.950]  0.025  0.904 [0.883, 0.951]  0.175 [0.091, 0.225]      848    0.26
    frame/gaussian          40  0.875 [0.775, 0.975]  0.025  0.903 [0.881, 0.950]  0.175 [0.094, 0.225]      848    0.00
    lags/cflow              40  0.900 [0.800, 0.975]  0.025  0.949 [0.926, 0.968]  0.108 [0.072, 0.150]      845    0.44
    lags/flow               40  0.875 [0.775, 0.950]  0.025  0.970 [0.950, 0.988]  0.085 [0.036, 0.125]      845    1.03
    lags/maf                40  0.900 [0.800, 0.975]  0.025  0.949 [0.924, 0.975]  0.100 [0.070, 0.163]      845    0.33
    lags/gaussian           40  0.875 [0.750, 0.975]  0.025  0.973 [0.953, 0.987]  0.075 [0.036, 0.122]      845    0.00
    lags/ar                 40  0.900 [0.800, 0.975]  0.025  0.968 [0.946, 0.988]  0.078 [0.035, 0.125]      845    0.00
    spectrum/flow           40  0.950 [0.875, 1.000]  0.025  0.953 [0.922, 0.976]  0.125 [0.071, 0.182]      900    0.17
    spectrum/gaussian       40  0.975 [0.925, 1.000]  0.025  0.951 [0.920, 0.975]  0.114 [0.075, 0.183]      900    0.00
    spectrum/pflow          40  0.975 [0.925, 1.000]  0.025  0.996 [0.990, 0.999]  0.020 [0.004, 0.041]      900    0.24
    spectrum/pmaf           40  0.975 [0.925, 1.000]  0.025  0.993 [0.986, 0.998]  0.025 [0.008, 0.051]      900    0.11
    spectrum/rflow          40  0.975 [0.925, 1.000]  0.025  0.960 [0.929, 0.988]  0.108 [0.036, 0.175]      900    0.14
    spectrum/pgauss         40  0.975 [0.925, 1.000]  0.025  0.994 [0.987, 0.998]  0.025 [0.008, 0.050]      900    0.01
    spectrum/nn             40  0.975 [0.925, 1.000]  0.025  0.997 [0.994, 1.000]  0.015 [0.003, 0.032]      900    0.00
    spectrum_raw/flow       40  0.950 [0.875, 1.000]  0.025  0.897 [0.873, 0.960]  0.194 [0.100, 0.225]      900    0.22
    spectrum_raw/gaussian   40  0.925 [0.849, 1.000]  0.025  0.898 [0.873, 0.967]  0.199 [0.088, 0.228]      900    0.00
    spectrum_raw/pflow      40  0.950 [0.875, 1.000]  0.025  0.996 [0.989, 0.999]  0.024 [0.005, 0.044]      900    0.27
    spectrum_raw/pgauss     40  0.950 [0.875, 1.000]  0.025  0.995 [0.985, 0.999]  0.025 [0.008, 0.051]      900    0.02
    spectrum_raw/nn         40  0.950 [0.875, 1.000]  0.025  0.999 [0.995, 1.000]  0.016 [0.001, 0.038]      900    0.00
    windows/flow            40  0.925 [0.825, 1.000]  0.025  0.966 [0.941, 0.983]  0.085 [0.051, 0.143]      898    0.27
    windows/maf             40  0.875 [0.775, 0.975]  0.025  0.950 [0.917, 0.973]  0.125 [0.075, 0.183]      898    0.59
    windows/gaussian        40  0.925 [0.825, 1.000]  0.025  0.968 [0.946, 0.984]  0.080 [0.050, 0.133]      898    0.00
    best flow spectrum/pflow - best baseline spectrum/pgauss: top-1 +0.000 [+0.000, +0.000] p=1.000; EER
        -0.005 [-0.016, +0.002]; McNemar n10=0 n01=0 p=1.000
    best flow spectrum/pflow - best per-frame baseline lags/ar: top-1 +0.075 [+0.000, +0.150] p=0.104; EER
        -0.058 [-0.111, -0.012]; McNemar n10=3 n01=0 p=0.250
    best flow spectrum/pflow - reference spectrum/nn: top-1 +0.000 [+0.000, +0.000] p=1.000; EER +0.004
        [-0.017, +0.031]; McNemar n10=0 n01=0 p=1.000

Seed 31:

    frame/flow              40  0.875 [0.774, 0.975]  0.025  0.959 [0.930, 0.982]  0.115 [0.055, 0.160]      849    0.49
    frame/maf               40  0.875 [0.774, 0.975]  0.025  0.942 [0.911, 0.977]  0.136 [0.070, 0.190]      849    0.26
    frame/gaussian          40  0.850 [0.725, 0.950]  0.025  0.953 [0.923, 0.980]  0.125 [0.059, 0.174]      849    0.00
    lags/cflow              40  0.825 [0.700, 0.925]  0.025  0.961 [0.935, 0.978]  0.100 [0.054, 0.150]      846    0.40
    lags/flow               40  0.850 [0.725, 0.950]  0.025  0.974 [0.950, 0.989]  0.050 [0.035, 0.125]      846    0.67
    lags/maf                40  0.875 [0.775, 0.975]  0.025  0.966 [0.936, 0.984]  0.074 [0.049, 0.140]      846    0.43
    lags/gaussian           40  0.850 [0.725, 0.950]  0.025  0.971 [0.949, 0.985]  0.073 [0.047, 0.125]      846    0.00
    lags/ar                 40  0.850 [0.725, 0.950]  0.025  0.967 [0.943, 0.984]  0.083 [0.048, 0.133]      846    0.00
    spectrum/flow           40  0.900 [0.800, 0.975]  0.025  0.859 [0.840, 0.978]  0.249 [0.075, 0.284]      900    0.21
    spectrum/gaussian       40  0.900 [0.800, 0.975]  0.025  0.856 [0.832, 0.981]  0.250 [0.064, 0.299]      900    0.00
    spectrum/pflow          40  1.000 [1.000, 1.000]  0.025  0.997 [0.993, 1.000]  0.019 [0.003, 0.035]      900    0.38
    spectrum/pmaf           40  0.975 [0.925, 1.000]  0.025  0.997 [0.991, 0.999]  0.019 [0.005, 0.038]      900    0.12
    spectrum/rflow          40  1.000 [1.000, 1.000]  0.025  0.989 [0.974, 0.995]  0.050 [0.024, 0.101]      900    0.16
    spectrum/pgauss         40  0.975 [0.925, 1.000]  0.025  0.996 [0.991, 0.999]  0.020 [0.005, 0.041]      900    0.00
    spectrum/nn             40  0.975 [0.925, 1.000]  0.025  0.998 [0.995, 1.000]  0.011 [0.001, 0.025]      900    0.00
    spectrum_raw/flow       40  0.975 [0.925, 1.000]  0.025  0.823 [0.786, 0.947]  0.304 [0.108, 0.341]      900    0.21
    spectrum_raw/gaussian   40  0.975 [0.925, 1.000]  0.025  0.798 [0.769, 0.946]  0.325 [0.116, 0.350]      900    0.00
    spectrum_raw/pflow      40  0.950 [0.875, 1.000]  0.025  0.994 [0.984, 1.000]  0.022 [0.003, 0.051]      900    0.34
    spectrum_raw/pgauss     40  0.950 [0.875, 1.000]  0.025  0.991 [0.981, 0.999]  0.035 [0.006, 0.059]      900    0.01
    spectrum_raw/nn         40  0.950 [0.875, 1.000]  0.025  0.997 [0.991, 1.000]  0.019 [0.001, 0.050]      900    0.00
    windows/flow            40  0.900 [0.800, 0.975]  0.025  0.961 [0.920, 0.988]  0.083 [0.032, 0.150]      898    0.21
    windows/maf             40  0.900 [0.800, 0.975]  0.025  0.903 [0.865, 0.979]  0.183 [0.050, 0.244]      898    0.46
    windows/gaussian        40  0.900 [0.800, 0.975]  0.025  0.965 [0.928, 0.992]  0.075 [0.026, 0.143]      898    0.00
    best flow spectrum/pflow - best baseline spectrum/pgauss: top-1 +0.025 [+0.000, +0.075] p=0.724; EER
        -0.001 [-0.015, +0.006]; McNemar n10=1 n01=0 p=1.000
    best flow spectrum/pflow - best per-frame baseline lags/gaussian: top-1 +0.150 [+0.050, +0.275]
        p=0.004; EER -0.054 [-0.109, -0.023]; McNemar n10=6 n01=0 p=0.031
    best flow spectrum/pflow - reference spectrum/nn: top-1 +0.025 [+0.000, +0.075] p=0.724; EER +0.008
        [-0.010, +0.022]; McNemar n10=1 n01=0 p=1.000

Paired (flow - its baseline, compare_methods on the cached matrices; seed 12, then seed 31): no interval
of top-1, AUC or EER excludes zero, e.g. pooled flow - pooled Gaussian AUC +0.0019 [-0.0001, +0.0037] /
+0.0007 [-0.0005, +0.0029], head_pose flow - Gaussian AUC +0.0046 [-0.0006, +0.0110] / +0.0063 [-0.0004,
+0.0109]. Against the replaced MAF flows, AUC is ahead with the interval above zero for head_lags +0.0209
[+0.0067, +0.0387], head_windows +0.0163 [+0.0002, +0.0449] and the pooled spectra +0.0023 [+0.0002,
+0.0044] (seed 12) and head_pose +0.0169 [+0.0028, +0.0279] (seed 31); EER is lower or equal in every pair.

A third cohort with other dynamics, measured 2026-12-04 (the table by cf256cc, the paired figures after it
by compare_methods of 48c6aeb on the cached matrices, p = 2 (k + 1) / (B + 1)): dis phantom --participants 40
--sessions 2 --duration 30 --fps 15 --seed 5 --swap-faces --camera-deg 8 --hidden-fraction 0.05 (the
default dynamics, 30 s sessions; 421-450 usable rows per video). spectrum/pflow 1.000 [1.000, 1.000], EER
0.011 [0.002, 0.027]; spectrum/pgauss 1.000, 0.011 [0.003, 0.028]; spectrum/nn 0.975, 0.025 [0.000,
0.075]; frame/flow 0.975 [0.925, 1.000], 0.103; frame/gaussian 0.900 [0.800, 0.975], 0.122; lags/ar 0.850,
0.075; windows/flow 0.900, 0.125. Paired: spectrum/pflow - spectrum/pgauss top-1 +0.000, EER +0.000
[-0.008, +0.007]; - frame/gaussian top-1 +0.100 [+0.025, +0.200] p=0.014 (McNemar 4 vs 0, p=0.125), EER
-0.112 [-0.174, -0.079] p=0.002.

A 100-person cohort, planned before any of its results (one new seed, the rules of seeds 12 and 31 with
near neighbours scaled from 6 of 40 to 15 of 100; the analysis fixed beforehand: this script's lines, no
flow or feature changed after them), measured 2026-12-04 with 082e6e3: dis phantom --participants 100
--sessions 2 --duration 60 --fps 15 --seed 47 --swap-faces --rich-dynamics --camera-deg 8
--hidden-fraction 0.05 --near-neighbours 15 (rendered in 24 min; `dis run` extracted 200 videos, 170,860 of
180,000 frames with a face, and did everything in 23 min, 0 failed; this script 11 min). Chance top-1 0.010:

    frame/flow             100  0.760 [0.670, 0.850]  0.010  0.944 [0.931, 0.958]  0.104 [0.090, 0.139]      848    0.38
    frame/maf              100  0.760 [0.670, 0.840]  0.010  0.923 [0.901, 0.946]  0.130 [0.108, 0.180]      848    0.18
    frame/gaussian         100  0.720 [0.630, 0.810]  0.010  0.939 [0.925, 0.952]  0.113 [0.097, 0.150]      848    0.00
    lags/cflow             100  0.810 [0.730, 0.890]  0.010  0.932 [0.915, 0.951]  0.141 [0.102, 0.172]      846    0.30
    lags/flow              100  0.830 [0.750, 0.900]  0.010  0.963 [0.949, 0.975]  0.081 [0.058, 0.114]      846    0.91
    lags/maf               100  0.790 [0.710, 0.870]  0.010  0.944 [0.922, 0.966]  0.120 [0.073, 0.166]      846    0.23
    lags/gaussian          100  0.830 [0.760, 0.900]  0.010  0.964 [0.952, 0.974]  0.072 [0.060, 0.107]      846    0.00
    lags/ar                100  0.830 [0.750, 0.900]  0.010  0.958 [0.944, 0.969]  0.090 [0.069, 0.123]      846    0.00
    spectrum/flow          100  0.890 [0.830, 0.950]  0.010  0.935 [0.915, 0.962]  0.166 [0.110, 0.198]      900    0.14
    spectrum/gaussian      100  0.930 [0.880, 0.980]  0.010  0.939 [0.921, 0.963]  0.156 [0.110, 0.187]      900    0.00
    spectrum/pflow         100  0.980 [0.950, 1.000]  0.010  0.997 [0.995, 0.999]  0.011 [0.007, 0.024]      900    0.43
    spectrum/pmaf          100  0.970 [0.940, 1.000]  0.010  0.996 [0.994, 0.998]  0.013 [0.010, 0.028]      900    0.10
    spectrum/rflow         100  0.950 [0.910, 0.990]  0.010  0.994 [0.988, 0.996]  0.032 [0.020, 0.059]      900    0.12
    spectrum/pgauss        100  0.970 [0.940, 1.000]  0.010  0.996 [0.994, 0.998]  0.012 [0.010, 0.029]      900    0.01
    spectrum/nn            100  0.940 [0.890, 0.980]  0.010  0.998 [0.997, 0.999]  0.010 [0.005, 0.017]      900    0.00
    spectrum_raw/flow      100  0.910 [0.850, 0.960]  0.010  0.932 [0.887, 0.958]  0.150 [0.099, 0.210]      900    0.13
    spectrum_raw/gaussian  100  0.910 [0.850, 0.960]  0.010  0.935 [0.895, 0.966]  0.137 [0.085, 0.199]      900    0.00
    spectrum_raw/pflow     100  0.970 [0.930, 1.000]  0.010  0.997 [0.995, 0.999]  0.013 [0.007, 0.027]      900    0.43
    spectrum_raw/pgauss    100  0.970 [0.930, 1.000]  0.010  0.997 [0.993, 0.999]  0.019 [0.009, 0.035]      900    0.01
    spectrum_raw/nn        100  0.920 [0.870, 0.970]  0.010  0.999 [0.998, 1.000]  0.006 [0.002, 0.011]      900    0.00
    windows/flow           100  0.870 [0.800, 0.930]  0.010  0.969 [0.942, 0.988]  0.060 [0.042, 0.102]      898    0.19
    windows/maf            100  0.830 [0.750, 0.900]  0.010  0.972 [0.946, 0.987]  0.072 [0.044, 0.111]      898    0.31
    windows/gaussian       100  0.860 [0.790, 0.930]  0.010  0.968 [0.943, 0.987]  0.065 [0.047, 0.110]      898    0.00
    best flow spectrum/pflow - best baseline spectrum/pgauss: top-1 +0.010 [+0.000, +0.030] p=0.763; EER -0.001
        [-0.009, +0.001]; McNemar n10=1 n01=0 p=1.000
    best flow spectrum/pflow - best per-frame baseline lags/gaussian: top-1 +0.150 [+0.070, +0.230] p=0.002; EER
        -0.061 [-0.093, -0.045]; McNemar n10=16 n01=1 p=0.000
    best flow spectrum/pflow - reference spectrum/nn: top-1 +0.040 [+0.010, +0.080] p=0.042; EER +0.002 [-0.004,
        +0.013]; McNemar n10=4 n01=0 p=0.125

The pooled Gaussian still identifies 97 of 100: pooled flow - pooled Gaussian top-1 +0.010 [+0.000,
+0.030], EER -0.001 [-0.009, +0.001] p=0.124; AUC +0.0012 [+0.0004, +0.0023] p=0.004 unadjusted
(compare_methods on the cached matrices, beyond the lines fixed beforehand): for the current pooled flow
(spline, Gaussian start) against its pooled Gaussian, the only paired interval of top-1, EER or AUC that
excludes zero on the four cohorts (seeds 12, 31, 5, 47), a thousandth of AUC; Bonferroni over the twelve
would put it near 0.05. McNemar 16 against 1 over the best per-frame baseline: p = 0.0003.

Excerpts of the test session (--excerpts 8,16,30 --only spectrum --methods pflow,pgauss,nn), measured
2026-12-04 with ef453ca (the reference lines by the next commit) and planned before any result: a whole session leaves the pooled
Gaussian at the ceiling, so identification from 8 s (one window; the primary length), 16 s and 30 s of the
test video; the flow to be called ahead only if at 8 s the paired top-1 interval lies above zero on the
100-person cohort and on both 40-person replications (seed 5 as above; seed 12 rendered again with its
recorded flags: 68,343 frames with a face as before, whole-session figures within 0.002 EER of the table
above). Top-1 is the mean over people of their excerpts' share identified among all N models; AUC/EER on
each excerpt's t-norm, a person's excerpts weighing as one person; chance 1/N:

    cohort   L    excerpts  pflow top-1            pgauss top-1           nn top-1               pflow EER / pgauss EER
    N=100    8 s   700      0.810 [0.774, 0.850]   0.790 [0.750, 0.830]   0.704 [0.657, 0.754]   0.036 / 0.042
    N=100   16 s   300      0.927 [0.887, 0.963]   0.933 [0.897, 0.967]   0.867 [0.820, 0.913]   0.019 / 0.023
    N=100   30 s   200      0.950 [0.910, 0.985]   0.940 [0.900, 0.975]   0.910 [0.860, 0.960]   0.013 / 0.016
    seed 12  8 s   280      0.896 [0.839, 0.946]   0.911 [0.861, 0.954]   0.846 [0.786, 0.904]   0.045 / 0.048
    seed 12 16 s   120      0.958 [0.892, 1.000]   0.958 [0.892, 1.000]   0.917 [0.850, 0.975]   0.025 / 0.032
    seed 12 30 s    80      0.950 [0.875, 1.000]   0.950 [0.875, 1.000]   0.925 [0.850, 0.975]   0.024 / 0.026
    seed 5   8 s   120      0.967 [0.925, 1.000]   0.975 [0.933, 1.000]   0.875 [0.817, 0.933]   0.028 / 0.025
    seed 5  16 s    40      1.000 [1.000, 1.000]   1.000 [1.000, 1.000]   0.950 [0.875, 1.000]   0.009 / 0.007
    seed 5  30 s    40      1.000 [1.000, 1.000]   1.000 [1.000, 1.000]   0.975 [0.925, 1.000]   0.011 / 0.011

(seed 5's sessions last 30 s: its 16 and 30 s excerpts are one per person.) Paired pflow - pgauss at 8 s
(p unadjusted): N = 100 top-1 +0.020 [+0.003, +0.040] p=0.030, AUC +0.002 [+0.002, +0.003], EER -0.005
[-0.012, -0.001]; seed 12 top-1 -0.014 [-0.032, +0.004], AUC +0.002 [-0.000, +0.004], EER -0.002 [-0.011,
+0.007]; seed 5 top-1 -0.008 [-0.025, +0.000], AUC -0.000 [-0.002, +0.001], EER +0.003 [-0.010, +0.011].
On N = 100 the flow's AUC stays ahead at 16 and 30 s (+0.001 [+0.001, +0.002] and +0.001 [+0.000, +0.002]),
its EER at 16 s (-0.004 [-0.010, -0.000]; at 30 s -0.003 [-0.009, +0.000]), its top-1 level. So by the rule
fixed beforehand the flow is not ahead: on the 100-person cohort it identifies one excerpt in fifty more
than the pooled Gaussian, on the two 40-person cohorts slightly fewer, with intervals reaching zero. What
excerpts do show: 8 s of head motion identify 0.79-0.98 of people (chance 0.01-0.025), and at 8 s the pooled
flow is ahead of the nearest-neighbour reference in top-1 on every cohort: +0.106 [+0.070, +0.143] (N = 100),
+0.050 [+0.018, +0.086] (seed 12), +0.092 [+0.041, +0.150] (seed 5); at 30 s that lead shrinks to +0.040
[+0.010, +0.075], +0.025 [-0.025, +0.075] and +0.025 [+0.000, +0.075]: a density over windows uses a short
excerpt better than a distance between its mean and the training mean.

The figures below are of the same seeds rendered by the earlier face rule (before 4 December 2026,
--swap-faces showed the next participant's face: a dyad partner's, for the first of each dyad); head
motion sees faces only through MediaPipe's per-face gain, and they are within a person of the above.

The head-motion flows since 4 December 2026 (HEAD_FLOW: a spline of 8 bins on each whitened axis, no MAF
layer, full batches); "maf" / "pmaf" are the MAF flows they replaced, on the same rows, seed-12 cohort
(re-extraction below), alone on the 2 cores (frame, lags and windows rows from a second run after review:
the default flows uncapped, the MAF of head_windows in its seeded batch order):

    frame/flow              40  0.900 [0.800, 0.975]  0.025  0.906 [0.885, 0.954]  0.169 [0.087, 0.220]      848    0.48
    frame/maf               40  0.875 [0.774, 0.975]  0.025  0.903 [0.882, 0.949]  0.175 [0.089, 0.225]      848    0.75
    frame/gaussian          40  0.900 [0.800, 0.975]  0.025  0.902 [0.880, 0.949]  0.174 [0.093, 0.225]      848    0.00
    lags/cflow              40  0.875 [0.775, 0.950]  0.025  0.949 [0.928, 0.967]  0.103 [0.074, 0.150]      845    0.81
    lags/flow               40  0.850 [0.750, 0.950]  0.025  0.971 [0.950, 0.987]  0.075 [0.036, 0.125]      845    1.09
    lags/maf                40  0.900 [0.800, 0.975]  0.025  0.950 [0.925, 0.975]  0.101 [0.073, 0.161]      845    0.53
    lags/gaussian           40  0.900 [0.800, 0.975]  0.025  0.974 [0.953, 0.986]  0.074 [0.033, 0.124]      845    0.00
    lags/ar                 40  0.900 [0.800, 0.975]  0.025  0.969 [0.947, 0.987]  0.075 [0.036, 0.125]      845    0.00
    spectrum/pflow          40  0.975 [0.925, 1.000]  0.025  0.996 [0.990, 0.999]  0.019 [0.005, 0.042]      900    0.29
    spectrum/pmaf           40  0.975 [0.925, 1.000]  0.025  0.993 [0.986, 0.998]  0.025 [0.010, 0.052]      900    0.18
    spectrum/pgauss         40  0.975 [0.925, 1.000]  0.025  0.993 [0.987, 0.998]  0.025 [0.009, 0.050]      900    0.02
    spectrum/nn             40  0.975 [0.925, 1.000]  0.025  0.997 [0.994, 1.000]  0.012 [0.003, 0.026]      900    0.00
    windows/flow            40  0.925 [0.825, 1.000]  0.025  0.967 [0.941, 0.983]  0.088 [0.050, 0.149]      898    0.29
    windows/maf             40  0.900 [0.800, 0.975]  0.025  0.949 [0.916, 0.973]  0.127 [0.075, 0.194]      898    0.62
    windows/gaussian        40  0.925 [0.825, 1.000]  0.025  0.969 [0.946, 0.984]  0.078 [0.050, 0.131]      898    0.03
    best flow spectrum/pflow - best baseline spectrum/pgauss: top-1 +0.000 [+0.000, +0.000] p=1.000; EER -0.006
        [-0.017, +0.001]; McNemar n10=0 n01=0 p=1.000
    best flow spectrum/pflow - best per-frame baseline lags/gaussian: top-1 +0.075 [+0.000, +0.175] p=0.086; EER
        -0.054 [-0.107, -0.009]
    best flow spectrum/pflow - reference spectrum/nn: EER +0.007 [-0.012, +0.031]

and on the seed-31 cohort (the same flags and run):

    frame/flow              40  0.875 [0.775, 0.975]  0.025  0.961 [0.933, 0.985]  0.096 [0.050, 0.150]      849    0.69
    frame/maf               40  0.875 [0.775, 0.975]  0.025  0.944 [0.914, 0.978]  0.126 [0.062, 0.182]      849    0.37
    frame/gaussian          40  0.875 [0.775, 0.975]  0.025  0.955 [0.926, 0.983]  0.110 [0.057, 0.164]      849    0.00
    lags/flow               40  0.850 [0.725, 0.950]  0.025  0.974 [0.950, 0.988]  0.050 [0.039, 0.125]      846    0.84
    lags/maf                40  0.850 [0.725, 0.950]  0.025  0.966 [0.938, 0.984]  0.067 [0.049, 0.150]      846    0.60
    lags/gaussian           40  0.850 [0.725, 0.950]  0.025  0.971 [0.950, 0.985]  0.057 [0.049, 0.125]      846    0.00
    spectrum/pflow          40  1.000 [1.000, 1.000]  0.025  0.997 [0.993, 1.000]  0.020 [0.003, 0.036]      900    0.41
    spectrum/pmaf           40  0.975 [0.925, 1.000]  0.025  0.997 [0.991, 0.999]  0.019 [0.005, 0.038]      900    0.13
    spectrum/pgauss         40  1.000 [1.000, 1.000]  0.025  0.997 [0.991, 1.000]  0.019 [0.005, 0.041]      900    0.00
    spectrum/nn             40  0.975 [0.925, 1.000]  0.025  0.997 [0.995, 1.000]  0.012 [0.002, 0.025]      900    0.00
    windows/flow            40  0.850 [0.725, 0.950]  0.025  0.955 [0.913, 0.988]  0.088 [0.036, 0.155]      898    0.29
    windows/maf             40  0.875 [0.775, 0.950]  0.025  0.900 [0.863, 0.977]  0.187 [0.050, 0.239]      898    0.56
    windows/gaussian        40  0.875 [0.775, 0.975]  0.025  0.961 [0.924, 0.991]  0.086 [0.025, 0.150]      898    0.00
    best flow spectrum/pflow - best baseline spectrum/pgauss: top-1 +0.000 [+0.000, +0.000]; EER +0.001
        [-0.014, +0.007]

The spline flows are level with their Gaussians on both cohorts (pooled: EER -0.006 [-0.017, +0.001] and
+0.001 [-0.014, +0.007]; top-1 within two people either way, e.g. head_lags 0.850 against 0.900 on seed 12),
ahead of them only in AUC per frame on seed 31 (+0.0064 [+0.0009, +0.0109]; EER -0.015 [-0.033, +0.008]).
Against the MAF flows they replace, paired AUC is ahead where the interval excludes zero (head_lags +0.0210
[+0.0065, +0.0379] and head_windows +0.0177 [+0.0004, +0.0456] on seed 12, head_pose +0.0166 [+0.0035,
+0.0285] on seed 31, pooled spectra +0.0027 [+0.0002, +0.0046] on seed 12) and level elsewhere; EER is
lower in every pair but one, with intervals that reach zero (head_windows -0.038 and -0.098). Why: after whitening, the
pooled spectral rows are skewed (-0.7) and heavy-tailed (excess kurtosis 2-3) alike in both sessions; the
MAF's validation loss rose from its first epoch at every learning rate and width tried, while the spline's
fell by 0.34 nats and its shape gained 0.31 nats a row on the other session's rows (centred on their own
mean). None of this makes a flow beat the best baseline: the pooled Gaussian is at the ceiling of these
cohorts (one person or none missed) and what identifies is where a person's windows lie, which the shape
shared by all moves alike for everyone.

Flows started as the Gaussian of their rows (FlowConfig.init = "gaussian", the default since 3 December
2026, late; the start is a candidate of early stopping), on the seed-12 cohort's re-extraction described
below (68,343 of 72,000 frames with a face), alone on the 2 cores:

    feature set/method       N  top-1 [95% CI]          chance AUC [95% CI]          EER [95% CI]          usable train s
    frame/flow              40  0.875 [0.774, 0.975]  0.025  0.903 [0.882, 0.949]  0.175 [0.089, 0.225]      848    0.29
    frame/gaussian          40  0.900 [0.800, 0.975]  0.025  0.902 [0.880, 0.949]  0.174 [0.093, 0.225]      848    0.00
    lags/cflow              40  0.875 [0.775, 0.950]  0.025  0.949 [0.928, 0.967]  0.103 [0.074, 0.150]      845    0.38
    lags/flow               40  0.900 [0.800, 0.975]  0.025  0.950 [0.925, 0.975]  0.101 [0.073, 0.161]      845    0.30
    lags/gaussian           40  0.900 [0.800, 0.975]  0.025  0.974 [0.953, 0.986]  0.074 [0.033, 0.124]      845    0.00
    lags/ar                 40  0.900 [0.800, 0.975]  0.025  0.969 [0.947, 0.987]  0.075 [0.036, 0.125]      845    0.00
    spectrum/flow           40  0.950 [0.875, 1.000]  0.025  0.951 [0.920, 0.975]  0.125 [0.074, 0.187]      900    0.15
    spectrum/gaussian       40  0.975 [0.925, 1.000]  0.025  0.951 [0.920, 0.974]  0.125 [0.075, 0.189]      900    0.00
    spectrum/pflow          40  0.975 [0.925, 1.000]  0.025  0.993 [0.986, 0.998]  0.025 [0.010, 0.052]      900    0.08
    spectrum/rflow          40  0.975 [0.925, 1.000]  0.025  0.964 [0.931, 0.988]  0.110 [0.037, 0.166]      900    0.13
    spectrum/pgauss         40  0.975 [0.925, 1.000]  0.025  0.993 [0.987, 0.998]  0.025 [0.009, 0.050]      900    0.02
    spectrum/nn             40  0.975 [0.925, 1.000]  0.025  0.997 [0.994, 1.000]  0.012 [0.003, 0.026]      900    0.00
    spectrum_raw/flow       40  0.975 [0.925, 1.000]  0.025  0.897 [0.872, 0.960]  0.195 [0.093, 0.225]      900    0.15
    spectrum_raw/gaussian   40  0.950 [0.875, 1.000]  0.025  0.897 [0.872, 0.968]  0.203 [0.084, 0.229]      900    0.00
    spectrum_raw/pflow      40  0.950 [0.875, 1.000]  0.025  0.995 [0.986, 0.999]  0.027 [0.008, 0.050]      900    0.08
    spectrum_raw/pgauss     40  0.950 [0.875, 1.000]  0.025  0.995 [0.986, 0.999]  0.026 [0.008, 0.051]      900    0.01
    spectrum_raw/nn         40  0.975 [0.925, 1.000]  0.025  0.998 [0.996, 1.000]  0.015 [0.001, 0.030]      900    0.00
    windows/flow            40  0.900 [0.800, 0.975]  0.025  0.949 [0.916, 0.973]  0.127 [0.075, 0.194]      898    0.45
    windows/gaussian        40  0.925 [0.825, 1.000]  0.025  0.969 [0.946, 0.984]  0.078 [0.050, 0.131]      898    0.03
    best flow spectrum/pflow - best baseline spectrum/pgauss: top-1 +0.000 [+0.000, +0.000] p=1.000; EER +0.000
        [-0.003, +0.010]; McNemar n10=0 n01=0 p=1.000
    best flow spectrum/pflow - best per-frame baseline lags/gaussian: top-1 +0.075 [+0.000, +0.175] p=0.086; EER
        -0.049 [-0.098, +0.002]; McNemar n10=3 n01=0 p=0.250
    best flow spectrum/pflow - reference spectrum/nn: top-1 +0.000 [+0.000, +0.000] p=1.000; EER +0.013 [-0.006,
        +0.045]; McNemar n10=0 n01=0 p=1.000

The pooled spectral flow keeps its start, the Gaussian of its fitting rows, for every seed (a run before a kept
start was refitted on every row; it now scores as the pooled Gaussian) (--flow-seed 0-4:
EER 0.025 [0.010, 0.052] each time; rflow, the same flow started at random: 0.110, 0.050, 0.050, 0.050,
0.067). It meets the goal (top-1 >= 0.90, EER <= 0.06) and is level with the pooled Gaussian, not ahead of
it: no epoch beats the start on validation, i.e. the within-person scatter of window spectra shows no shape
beyond the Gaussian that generalises. Flows of one's own are level with their Gaussian or behind it
(head_windows EER 0.127 against 0.078, head_lags 0.101 against 0.074: epochs that beat the start on a
person's last 15% of rows identify worse), never clearly ahead. Started at random, the own
spectral flow had EER 0.29 and head_windows 0.23 (first extraction and re-extraction, tables below).

Replicated with the Gaussian start on the seed-31 cohort (the same flags, rendered by `dis phantom` at
640x480 and extracted again here: 68,359 of 72,000 frames with a face, as in the replication below):

    frame/flow              40  0.875 [0.775, 0.975]  0.025  0.944 [0.914, 0.978]  0.126 [0.062, 0.182]      849    0.45
    frame/gaussian          40  0.875 [0.775, 0.975]  0.025  0.955 [0.926, 0.983]  0.110 [0.057, 0.164]      849    0.00
    lags/flow               40  0.850 [0.725, 0.950]  0.025  0.966 [0.938, 0.984]  0.067 [0.049, 0.150]      846    0.64
    lags/gaussian           40  0.850 [0.725, 0.950]  0.025  0.971 [0.950, 0.985]  0.057 [0.049, 0.125]      846    0.00
    spectrum/pflow          40  0.975 [0.925, 1.000]  0.025  0.997 [0.991, 0.999]  0.019 [0.005, 0.038]      900    0.13
    spectrum/rflow          40  1.000 [1.000, 1.000]  0.025  0.989 [0.974, 0.995]  0.050 [0.025, 0.100]      900    0.17
    spectrum/pgauss         40  1.000 [1.000, 1.000]  0.025  0.997 [0.991, 1.000]  0.019 [0.005, 0.041]      900    0.00
    spectrum/nn             40  0.975 [0.925, 1.000]  0.025  0.997 [0.995, 1.000]  0.012 [0.002, 0.025]      900    0.00
    windows/flow            40  0.875 [0.775, 0.950]  0.025  0.900 [0.863, 0.977]  0.187 [0.050, 0.239]      898    0.45
    windows/gaussian        40  0.875 [0.775, 0.975]  0.025  0.961 [0.924, 0.991]  0.086 [0.025, 0.150]      898    0.00
    spectrum/pflow - spectrum/pgauss (compare_methods on the cached matrices): top-1 -0.025 [-0.075, +0.000]
        p=0.724, McNemar n10=0 n01=1; EER +0.000 [-0.007, +0.007]

The pooled flow meets the goal here too and is again level with the pooled Gaussian, not ahead (the
bench's own "best flow" line picks rflow on top-1 and is left out above: rflow is a comparison, not a
default; rflow - pgauss EER +0.031 [+0.001, +0.089]).

Measured 2026-12-03, flows started at random (dis phantom --participants 40 --sessions 2 --duration 60 --fps 15,
400x300, seed 12, --swap-faces --rich-dynamics --camera-deg 8 --hidden-fraction 0.05 --near-neighbours 6;
MediaPipe found every visible face and no hidden one, 854 of 900 frames per video). pflow/pgauss: the pooled density
(TrainConfig.density = "pooled": one shape fitted on every person's centred training rows, placed at
each person's mean); wflow (until the flows started as Gaussians): the pooled flow on rows whitened by
the pooled Gaussian; rflow: the pooled flow started at random (FlowConfig.init = "random", every flow before
that change); nn: the non-density reference. Top-1 intervals rank each drawn person among all 40 models (stats.bootstrap_columns); spectral
windows start on frames and flows keep validation rows clear of the training rows sharing their frames
(train_flow(purge=...)). Training seconds are from a run sharing the 2 cores with a test suite.

    feature set/method     top-1 [95% CI]        chance AUC [95% CI]          EER [95% CI]          usable train s
    frame/flow             0.875 [0.775, 0.975]  0.025  0.898 [0.874, 0.940]  0.179 [0.105, 0.228]      848    5.50
    frame/gaussian         0.950 [0.875, 1.000]  0.025  0.903 [0.881, 0.950]  0.174 [0.092, 0.225]      848    0.20
    lags/cflow             0.825 [0.700, 0.925]  0.025  0.951 [0.924, 0.978]  0.101 [0.054, 0.164]      845    9.62
    lags/flow              0.825 [0.700, 0.925]  0.025  0.964 [0.939, 0.981]  0.100 [0.044, 0.150]      845    6.38
    lags/gaussian          0.850 [0.725, 0.950]  0.025  0.975 [0.956, 0.986]  0.059 [0.031, 0.115]      845    0.00
    lags/ar                0.900 [0.800, 0.975]  0.025  0.970 [0.950, 0.987]  0.075 [0.037, 0.122]      845    0.00
    spectrum/flow          0.950 [0.875, 1.000]  0.025  0.804 [0.774, 0.901]  0.291 [0.175, 0.325]      900    1.24
    spectrum/gaussian      0.975 [0.925, 1.000]  0.025  0.948 [0.916, 0.974]  0.131 [0.075, 0.190]      900    0.00
    spectrum/pflow         0.975 [0.925, 1.000]  0.025  0.984 [0.962, 0.991]  0.053 [0.030, 0.117]      900    0.48
    spectrum/wflow         0.975 [0.925, 1.000]  0.025  0.982 [0.965, 0.994]  0.055 [0.025, 0.100]      900    0.33
    spectrum/pgauss        0.975 [0.925, 1.000]  0.025  0.993 [0.987, 0.998]  0.025 [0.009, 0.050]      900    0.01
    spectrum/nn            0.975 [0.925, 1.000]  0.025  0.997 [0.994, 1.000]  0.013 [0.002, 0.025]      900    0.00
    spectrum_raw/flow      0.925 [0.825, 1.000]  0.025  0.717 [0.693, 0.815]  0.371 [0.275, 0.400]      900    1.23
    spectrum_raw/gaussian  0.975 [0.925, 1.000]  0.025  0.894 [0.873, 0.967]  0.203 [0.090, 0.229]      900    0.00
    spectrum_raw/pflow     0.975 [0.925, 1.000]  0.025  0.956 [0.930, 0.981]  0.125 [0.073, 0.176]      900    0.42
    spectrum_raw/pgauss    0.950 [0.875, 1.000]  0.025  0.995 [0.986, 0.999]  0.028 [0.008, 0.050]      900    0.01
    spectrum_raw/nn        0.950 [0.875, 1.000]  0.025  0.998 [0.996, 1.000]  0.015 [0.001, 0.030]      900    0.00
    windows/flow           0.825 [0.700, 0.925]  0.025  0.860 [0.830, 0.922]  0.241 [0.151, 0.290]      899    1.69
    windows/gaussian       0.925 [0.825, 1.000]  0.025  0.968 [0.946, 0.983]  0.085 [0.050, 0.133]      899    0.00
    chance: top-1 0.025, AUC 0.5, EER 0.5.
    best flow spectrum/pflow - best baseline spectrum/pgauss: top-1 +0.000 [+0.000, +0.000] p=1.000; EER +0.028
        [+0.008, +0.089]; McNemar n10=0 n01=0 p=1.000
    best flow spectrum/pflow - best per-frame baseline frame/gaussian: top-1 +0.025 [-0.050, +0.100] p=0.802; EER
        -0.121 [-0.165, -0.007]; McNemar n10=2 n01=1 p=1.000
    best flow spectrum/pflow - reference spectrum/nn: top-1 +0.000 [+0.000, +0.000] p=1.000; EER +0.040 [+0.018,
        +0.104]; McNemar n10=0 n01=0 p=1.000
    The pooled flow meets top-1 >= 0.90 and EER <= 0.06 but is behind its baseline, the pooled Gaussian.
    (Before windows started on frames, it was level with it: EER 0.035 against 0.026, +0.009 [-0.005, +0.061].)

Replicated on a second cohort, the same settings with seed 31 (every method as chosen on seed 12, nothing
changed; MediaPipe found 68,359 of 72,000 frames):

    frame/flow             0.850 [0.725, 0.950]  0.025  0.952 [0.918, 0.975]  0.099 [0.073, 0.175]      849    5.49
    frame/gaussian         0.875 [0.775, 0.975]  0.025  0.956 [0.928, 0.981]  0.109 [0.055, 0.161]      849    0.07
    lags/cflow             0.750 [0.625, 0.875]  0.025  0.965 [0.932, 0.981]  0.083 [0.050, 0.154]      846    9.61
    lags/flow              0.850 [0.725, 0.950]  0.025  0.963 [0.930, 0.980]  0.108 [0.051, 0.158]      846    6.19
    lags/gaussian          0.825 [0.700, 0.925]  0.025  0.971 [0.950, 0.983]  0.062 [0.049, 0.125]      846    0.00
    lags/ar                0.850 [0.725, 0.950]  0.025  0.968 [0.945, 0.983]  0.076 [0.050, 0.130]      846    0.00
    spectrum/flow          0.900 [0.800, 0.975]  0.025  0.678 [0.666, 0.837]  0.394 [0.250, 0.415]      900    1.04
    spectrum/gaussian      0.925 [0.850, 1.000]  0.025  0.849 [0.826, 0.977]  0.258 [0.071, 0.300]      900    0.01
    spectrum/pflow         1.000 [1.000, 1.000]  0.025  0.989 [0.979, 0.995]  0.044 [0.025, 0.090]      900    0.56
    spectrum/wflow         0.975 [0.925, 1.000]  0.025  0.995 [0.986, 0.998]  0.021 [0.010, 0.054]      900    0.34
    spectrum/pgauss        0.975 [0.925, 1.000]  0.025  0.997 [0.991, 1.000]  0.019 [0.005, 0.042]      900    0.01
    spectrum/nn            0.975 [0.925, 1.000]  0.025  0.998 [0.995, 1.000]  0.010 [0.002, 0.025]      900    0.00
    spectrum_raw/flow      0.800 [0.675, 0.901]  0.025  0.626 [0.612, 0.743]  0.425 [0.317, 0.450]      900    1.47
    spectrum_raw/gaussian  0.975 [0.925, 1.000]  0.025  0.792 [0.765, 0.952]  0.301 [0.104, 0.350]      900    0.00
    spectrum_raw/pflow     0.950 [0.875, 1.000]  0.025  0.975 [0.961, 0.990]  0.078 [0.042, 0.122]      900    0.43
    spectrum_raw/pgauss    0.950 [0.875, 1.000]  0.025  0.992 [0.982, 0.999]  0.029 [0.007, 0.056]      900    0.01
    spectrum_raw/nn        0.950 [0.875, 1.000]  0.025  0.998 [0.993, 1.000]  0.012 [0.001, 0.037]      900    0.00
    windows/flow           0.800 [0.675, 0.925]  0.025  0.841 [0.811, 0.950]  0.263 [0.103, 0.300]      899    1.61
    windows/gaussian       0.875 [0.775, 0.975]  0.025  0.963 [0.926, 0.991]  0.075 [0.025, 0.150]      899    0.00
    best flow spectrum/pflow - best baseline spectrum/pgauss: top-1 +0.025 [+0.000, +0.075] p=0.724; EER +0.025
        [+0.003, +0.070]; McNemar n10=1 n01=0 p=1.000
    best flow spectrum/pflow - best per-frame baseline frame/gaussian: top-1 +0.125 [+0.025, +0.225] p=0.014; EER
        -0.065 [-0.122, +0.005]; McNemar n10=5 n01=0 p=0.062
    best flow spectrum/pflow - reference spectrum/nn: top-1 +0.025 [+0.000, +0.075] p=0.724; EER +0.033 [+0.009,
        +0.074]; McNemar n10=1 n01=0 p=1.000
    The goal is met again, and again the pooled flow is behind the pooled Gaussian (without the validation
    purge: EER 0.035, +0.016 [-0.000, +0.055]).

Re-extracted on another machine (2026-12-03, later session): the seed-12 cohort rendered and extracted
again from scratch, by `dis phantom` with the flags above, which renders 640x480 (its phantom.json says so;
the 400x300 of the first rendering is as recorded then, a size the CLI does not offer), 68,343 of 72,000
frames with a face (the first extraction was reported as 854 of 900 frames per video, about 68,320 in all). The Gaussian and the reference barely move, the
pooled flow does:

    spectrum/pflow          40  0.975 [0.925, 1.000]  0.025  0.964 [0.931, 0.988]  0.110 [0.037, 0.166]      900    0.27
    spectrum/pgauss         40  0.975 [0.925, 1.000]  0.025  0.993 [0.987, 0.998]  0.025 [0.009, 0.050]      900    0.02
    spectrum/nn             40  0.975 [0.925, 1.000]  0.025  0.997 [0.994, 1.000]  0.012 [0.003, 0.026]      900    0.00
    best flow spectrum/pflow - best baseline spectrum/pgauss: EER +0.085 [+0.011, +0.137]

The pooled flow's initialisation seed (FlowConfig.seed, 0 by default) alone, on these same rows: EER 0.110,
0.050, 0.050, 0.050, 0.067 for seeds 0-4 (top-1 0.975 for every seed), minus the pooled Gaussian +0.085,
+0.025, +0.025, +0.025, +0.042 (each interval above or at 0). The EER <= 0.06 goal therefore holds for
the pooled flow on 3 of 5 seeds here; the Gaussian's 0.025 holds with no seed at all.

head_windows after its grid samples became cell means (a box filter against aliasing), on this cohort:

    windows/flow            40  0.775 [0.625, 0.900]  0.025  0.864 [0.826, 0.918]  0.226 [0.156, 0.293]      898    2.01
    windows/gaussian        40  0.925 [0.825, 1.000]  0.025  0.969 [0.946, 0.984]  0.078 [0.050, 0.131]      898    0.03
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from dis_core.errors import DISError  # noqa: E402
from dis_core.extract.h5store import read_extraction  # noqa: E402
from dis_core.extract.pose import euler_to_rotation  # noqa: E402
from dis_core.io.atomic import write_text_atomic  # noqa: E402
from dis_core.io.provenance import script_provenance, sha256_file  # noqa: E402
from dis_core.layout import RunLayout  # noqa: E402
from dis_core.features.build import (DEFAULT_FEATURE_SETS, EXTRA_FEATURE_SETS, FEATURE_SETS, FeatureSpec,  # noqa: E402
                                     base_values, row_overlap, video_features)
from dis_core.manifest import load_manifest  # noqa: E402
from dis_core.cohort.split import whole_video_rule  # noqa: E402
from dis_core.cohort.stage import extraction_problem  # noqa: E402
from dis_core.model.baselines import ARGaussian, nn_spectrum_scores  # noqa: E402
from dis_core.features.temporal import fit_window_basis  # noqa: E402
from dis_core.model.config import POOLED_FLOW, default_train_config  # noqa: E402
from dis_core.model.flows import FlowConfig, fit_gaussian, train_flow  # noqa: E402
from dis_core.model.stage import FIT_RULE, centred_rows, pooled_rows  # noqa: E402
from dis_core.score import stats as st  # noqa: E402
from dis_core.score.excerpts import Excerpts, excerpt_labels, excerpt_rows, excerpt_scores  # noqa: E402
from dis_core.score.scoring import (SCORE_RULE, compare_methods, headline_intervals, identification,  # noqa: E402
                                    score_matrix, tnorm, verification)

# The candidate feature sets, as the library offers them (dis_core.features.build).
SPECS: dict[str, FeatureSpec] = {
    "frame": DEFAULT_FEATURE_SETS["head_pose"],  # rotation vector + angular velocity per frame
    "lags": EXTRA_FEATURE_SETS["head_lags"],  # + the past 0.2 and 0.4 s, gain-normalised
    "spectrum": FEATURE_SETS["head_spectrum"],  # log band power over 8 s windows, gain-normalised
    "spectrum_raw": dataclasses.replace(FEATURE_SETS["head_spectrum"], name="spectrum_raw", scale="none"),
    "windows": EXTRA_FEATURE_SETS["head_windows"],  # 2 s of trajectory on the axes of the training windows' PCA
}
# "flow" / "pflow" are the library's defaults, as the pipeline trains them (a spline on the Gaussian,
# HEAD_FLOW: full batches, cheap); "maf" / "pmaf" the MAF flows they replaced (Gaussian start; per-frame ones
# capped at 60 epochs, patience 10, to fit a 40-person bench into minutes on a shared 2-core machine; window
# rows run to their early stop), "rflow" the pooled MAF started at random (DIS before 3 December 2026).
_CAP = dict(max_epochs=60, patience=10)
FLOWS = {name: default_train_config(spec).flow for name, spec in SPECS.items()}
MAFS = {"frame": FlowConfig(layers=2, hidden=16, **_CAP), "lags": FlowConfig(layers=2, hidden=32, **_CAP),
        "spectrum": FlowConfig(layers=2, hidden=32), "spectrum_raw": FlowConfig(layers=2, hidden=32),
        "windows": FlowConfig()}
POOLED_MAF = FlowConfig(layers=2, hidden=32)
CFLOW = FlowConfig(layers=2, hidden=32, conditional="lags", **_CAP)
METHODS = {"frame": ["flow", "maf", "gaussian"], "lags": ["cflow", "flow", "maf", "gaussian", "ar"],
           "spectrum": ["flow", "gaussian", "pflow", "pmaf", "rflow", "pgauss", "nn"],
           "spectrum_raw": ["flow", "gaussian", "pflow", "pgauss", "nn"], "windows": ["flow", "maf", "gaussian"]}
# flows, density baselines (what a flow must beat) and the non-density reference (context, not a baseline)
FLOW_METHODS, REFERENCES = ("flow", "maf", "cflow", "pflow", "pmaf", "rflow"), ("nn",)


FLOW_SEED: int | None = None  # --flow-seed: every flow's initialisation seed (None: each config's own)


def _flow_config(spec_name: str, method: str) -> FlowConfig | None:
    """The flow a method fits (None for a baseline or the reference)."""
    cfg = {"flow": FLOWS.get(spec_name), "maf": MAFS.get(spec_name), "cflow": CFLOW, "pflow": POOLED_FLOW,
           "pmaf": POOLED_MAF, "rflow": dataclasses.replace(POOLED_MAF, init="random")}.get(method)
    return cfg if cfg is None or FLOW_SEED is None else dataclasses.replace(cfg, seed=FLOW_SEED)


def _config_tag(spec_name: str, method: str) -> str:
    """A cached flow's score matrix names its configuration: another flow is another file, never a stale hit."""
    import hashlib

    cfg = _flow_config(spec_name, method)
    # the training and scoring rules too, for every method: a changed rule is another matrix, never a stale hit
    doc = [dataclasses.asdict(cfg) if cfg is not None else method, FIT_RULE, SCORE_RULE]
    return "__" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:8]


def _data_tag(feats, pids) -> str:
    """The rows a cached matrix was computed from (people, columns, training and test rows and times): a
    re-extraction, --truth or another feature rule is another file, never a stale hit."""
    import hashlib

    h = hashlib.sha256(json.dumps([pids, feats[pids[0]]["train"][1]]).encode())
    for p in pids:
        for part in ("train", "test"):
            h.update(np.ascontiguousarray(feats[p][part][0], np.float64).tobytes())
            h.update(np.ascontiguousarray(feats[p][part].times, np.float64).tobytes())
    return h.hexdigest()[:8]


def _load(key: Path | None, names: tuple[str, ...]) -> dict | None:
    """A cached file's arrays, or None when there is none or it cannot be read (an interrupted write: computed
    again, not a crash)."""
    import zipfile

    if key is None or not key.is_file():
        return None
    try:
        with np.load(key) as z:
            return {k: z[k] for k in names}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _save(key: Path, **arrays) -> None:
    """np.savez through a temporary file renamed into place: a kill mid-write leaves no half file."""
    from dis_core.io.atomic import atomic_path

    with atomic_path(key) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _cache_key(cache: Path | None, feats, pids, spec_name: str, m: str, what: str = "") -> Path | None:
    return (cache / f"{spec_name}__{m}{_config_tag(spec_name, m)}__{_data_tag(feats, pids)}{what}.npz"
            if cache else None)


SPLIT_WORDS = ("whole videos held out: the manifest's split column, else the last session listed (session 1 train, "
               "session 2 test for dis phantom)")


def _recorded_plan(record: dict):
    """The run's plan from its run.json (None without one, or for a record that holds only part of a plan)."""
    from jobs.graph import plan_from_record

    try:
        return plan_from_record(record) if record.get("plan") else None
    except DISError:
        return None


def load_videos(run: Path, manifest: Path, truth: bool, partial: bool = False, rule: str = "auto",
                expect: dict | None = None):
    """({pid: {"train": [(transform, time_s)], "test": [...]}}, {pid: why left out}) from the extraction (or
    truth) files, split by whole videos as the pipeline splits under the split ``rule`` its run recorded;
    ``partial``: skip videos not extracted (yet), and participants left without both parts. An extraction is used
    only if it is of the video's current bytes and of the run's inputs (``expect``: face model, configuration,
    extractor), as the cohort step uses it: a re-rendered phantom whose re-extraction never ran gave the old
    videos' figures."""
    m = load_manifest(manifest)
    rows: dict[str, list] = {}
    for e in m.entries:
        rows.setdefault(e.participant_id, []).append(e)
    rules = {pid: whole_video_rule(es, rule) for pid, es in rows.items()}
    out: dict[str, dict[str, list]] = {}
    for e in m.entries:
        if partial and not truth and not RunLayout(run).extraction(e.unit_id).is_file():
            continue
        if rules[e.participant_id] is None:  # one session and no split column: nothing held out across sessions
            continue
        part = "test" if rules[e.participant_id][1](e) else "train"
        if truth:
            tp = Path(str(e.video).replace(".mp4", ".truth.csv"))
            a = np.loadtxt(tp, delimiter=",", skiprows=1, ndmin=2)
            tr = np.tile(np.eye(4), (len(a), 1, 1))
            tr[:, :3, :3] = euler_to_rotation(a[:, 2:5])
            if a.shape[1] > 5:
                tr[a[:, 5] > 0] = np.nan
            t = a[:, 1]
        else:
            h5 = RunLayout(run).extraction(e.unit_id)
            if not h5.is_file():
                raise SystemExit(f"{h5}: no extraction of {e.video} (--run takes the folder `dis run --out` or "
                                 "`dis extract --out` wrote; --partial skips videos not extracted yet)")
            why = extraction_problem(run, e, h5, expect or {})
            if why and partial:
                continue
            if why:
                raise SystemExit(f"{h5}: extraction {why} (--partial skips it)")
            x = read_extraction(h5, skip=("landmarks", "blendshapes"))
            tr, t = x.transform.astype(np.float64), x.time_s.astype(np.float64)
        out.setdefault(e.participant_id, {"train": [], "test": []})[part].append((tr, t))
    both = {p: v for p, v in out.items() if v["train"] and v["test"]}
    if not both:
        raise SystemExit(f"{manifest}: no participant has both a training and a test video (the bench holds out "
                         "whole videos: a split column naming train and test, or two or more sessions, the last "
                         f"one listed held out{'' if rule == 'auto' else f'; the run split {rule}'})")
    within = ("no split column and one session" if rule == "auto" else f"no split column, and the run split {rule}")
    left = {p: (f"{within}: a split within the session, which the bench does not make"
                if rules[p] is None else "no training or no test video" + (
                    " extracted yet (or of its current bytes and the run's inputs)" if partial else ""))
            for p in rows if p not in both}
    return both, left


def features(videos, spec: FeatureSpec):
    """{pid: {part: (x, columns, usable frames per video)}} built as the pipeline builds them; frame
    windows on the PCA basis of every participant's training windows (as the cohort step fits it)."""
    basis = None
    if spec.window == "frames":
        raw = _features(videos, spec)  # raw windows
        x = np.concatenate([raw[p]["train"][0] for p in raw])
        basis = fit_window_basis(x, raw[next(iter(raw))]["train"][1], spec.k)
    return _features(videos, spec, basis)


def _features(videos, spec: FeatureSpec, basis=None):
    """{pid: {part: Part}}: the rows of a part's videos, their times and videos, and each video's span."""
    out = {}
    for pid, parts in videos.items():
        out[pid] = {}
        for part, vids in parts.items():
            xs, cols, usable, ts, vs, spans = [], None, [], [], [], {}
            for k, (tr, t) in enumerate(vids):
                vals, c = base_values(spec.source, transform=tr)
                sel = np.ones(len(t), bool)
                vf = video_features(vals, c, t, sel, sel, spec, basis)
                xs.append(vf.x)
                ts.append(vf.times)
                vs.append(np.full(len(vf.x), k))
                spans[k] = (float(t[0]), float(t[-1] + np.median(np.diff(t)))) if len(t) > 1 else (0.0, 0.0)
                cols = vf.columns
                usable.append(len(vf.covered) if vf.covered is not None else len(vf.frames))
            out[pid][part] = Part(np.concatenate(xs) if xs else np.zeros((0, 0)), cols, usable,
                                  np.concatenate(ts) if ts else np.zeros(0), np.concatenate(vs) if vs else np.zeros(0, int),
                                  spans)
    return out


class Part(NamedTuple):
    """One participant's training or test rows as the pipeline builds them."""

    x: np.ndarray
    columns: list[str]
    usable: list[int]  # usable frames per video
    times: np.ndarray  # each row's time (a window's centre), s
    video: np.ndarray  # each row's video (index into the part's videos)
    spans: dict  # video index -> (first frame's start, last frame's end), s


@dataclasses.dataclass
class Result:
    name: str
    s: np.ndarray
    train_s: float
    usable: float
    pids: tuple = ()  # the participants of the rows and columns, in order: comparisons pair people by name


def paired(a: Result, b: Result, n_boot: int = 1000) -> dict | None:
    """:func:`compare_methods` of two results on the same participants in the same order (None when the people
    differ: rows of other people cannot be paired, whatever their number)."""
    if a.pids != b.pids or a.s.shape != b.s.shape:
        return None
    return compare_methods(a.s, b.s, n_boot=n_boot)


def diff_text(c: dict) -> str:
    """A paired difference in words: top-1 and EER, each with its interval and unadjusted p."""
    return (f"top-1 {st.signed(c['top1_diff'], 3)} [{st.signed(c['top1_diff_lo'], 3)}, "
            f"{st.signed(c['top1_diff_hi'], 3)}] p {st.p_text(c['top1_p'])}; EER {st.signed(c['eer_diff'], 3)} "
            f"[{st.signed(c['eer_diff_lo'], 3)}, {st.signed(c['eer_diff_hi'], 3)}] p {st.p_text(c['eer_p'])}")


def scored(feats) -> list[str]:
    """The participants a feature set can score: 20 training and 5 test rows at least."""
    return [p for p in sorted(feats) if len(feats[p]["train"][0]) >= 20 and len(feats[p]["test"][0]) >= 5]


def per_row(feats, pids, spec_name: str, m: str):
    """Every model's log p on every test person's rows (``out[i][j]``, rows of j), and training seconds
    per person; for the reference ``nn``, None (it scores session means: :func:`nn_scores`)."""
    cols = feats[pids[0]]["train"][1]
    test = [feats[p]["test"][0] for p in pids]
    if m == "nn":
        return None, 0.0
    if m in ("pflow", "pmaf", "pgauss", "rflow"):  # TrainConfig.density = "pooled": one shape, placed at each person's mean
        xs = [feats[p]["train"][0] for p in pids]
        purge = row_overlap(SPECS[spec_name])  # as the pooled stage: validation clear of shared frames
        fraction = (_flow_config(spec_name, m) or POOLED_FLOW).val_fraction  # the method's own (its cache key's)
        x, val = pooled_rows(xs, fraction, purge)
        t1 = time.perf_counter()
        shape = (fit_gaussian(centred_rows(xs), cols) if m == "pgauss" else
                 train_flow(x, cols, _flow_config(spec_name, m), val=val, purge=purge,
                            refit_rows=centred_rows(xs)).density)  # a kept start: the pooled Gaussian, as the stage
        lp = lambda v, c: shape.placed(c).log_prob(v, cols)  # noqa: E731
        out = [[lp(v, xp.mean(axis=0)) for v in test] for xp in xs]
        return out, (time.perf_counter() - t1) / len(pids)
    lps, secs = [], []
    for p in pids:
        x = feats[p]["train"][0]
        t1 = time.perf_counter()
        if m in ("flow", "maf", "cflow"):
            d = train_flow(x, cols, _flow_config(spec_name, m), purge=row_overlap(SPECS[spec_name])).density
            lps.append(lambda v, d=d: d.log_prob(v, cols))
        elif m == "gaussian":
            d = fit_gaussian(x, cols)
            lps.append(lambda v, d=d: d.log_prob(v, cols))
        elif m == "ar":
            lps.append(ARGaussian().fit(x, cols).score_samples)
        secs.append(time.perf_counter() - t1)
    return [[lp(v) for v in test] for lp in lps], float(np.mean(secs))


def nn_scores(feats, pids, test_rows=None) -> np.ndarray:
    """The reference: minus the distance of each person's training-session mean spectrum to each test
    set's mean (``test_rows``: a list of row arrays; default each person's whole test session)."""
    test = test_rows if test_rows is not None else [feats[p]["test"][0] for p in pids]
    return nn_spectrum_scores([feats[p]["train"][0].mean(axis=0) for p in pids], [x.mean(axis=0) for x in test])


def evaluate(feats, spec_name: str, methods: list[str], cache: Path | None, log, cached_only: bool = False,
             keep_rows: bool = False) -> list[Result]:
    """Each method's whole-session score matrix (``keep_rows``: from per-row log p kept for --excerpts)."""
    pids = scored(feats)
    if len(pids) < len(feats):
        log(f"  {spec_name}: left out (too few rows): {sorted(set(feats) - set(pids))}")
    if len(pids) < 2:  # nobody to tell apart: the other feature sets' results stand (an IndexError lost them)
        log(f"  {spec_name}: skipped ({len(pids)} participant(s) with enough rows)")
        return []
    usable = float(np.mean([u for p in pids for part in ("train", "test") for u in feats[p][part][2]]))
    res = []
    for m in methods:
        key = _cache_key(cache, feats, pids, spec_name, m)
        got = _load(key, ("s", "train_s"))
        if got is not None:
            res.append(Result(f"{spec_name}/{m}", got["s"], float(got["train_s"]), usable, tuple(pids)))
            continue
        if cached_only:
            continue
        t0 = time.perf_counter()
        if keep_rows and m != "nn":
            rows, train_s = _rows_cached(feats, pids, spec_name, m, cache, log)
        else:
            rows, train_s = per_row(feats, pids, spec_name, m)
        s = nn_scores(feats, pids) if rows is None else score_matrix(rows, names=pids)
        if key is not None:
            _save(key, s=s, train_s=train_s, pids=np.array(pids))
        res.append(Result(f"{spec_name}/{m}", s, train_s, usable, tuple(pids)))
        log(f"  {spec_name}/{m}: {time.perf_counter() - t0:.0f} s")
    return res


def _rows_cached(feats, pids, spec_name: str, m: str, cache: Path | None, log, cached_only: bool = False):
    """:func:`per_row` and training seconds, kept in ``cache`` as one (models, test rows) array per method
    (None with ``cached_only`` and nothing kept)."""
    key = _cache_key(cache, feats, pids, spec_name, m, "__rows")
    memo = (spec_name, m, tuple(pids))
    if memo in _ROWS:  # without --cache, --excerpts trained every model a second time (and could differ on a GPU)
        return _ROWS[memo]
    lens = [len(feats[p]["test"][0]) for p in pids]
    got = _load(key, ("lp", "train_s"))
    if got is not None:
        return [np.split(r, np.cumsum(lens)[:-1]) for r in got["lp"]], float(got["train_s"])
    if cached_only:
        return None, 0.0
    t0 = time.perf_counter()
    rows, train_s = per_row(feats, pids, spec_name, m)
    if key is not None:
        _save(key, lp=np.stack([np.concatenate(r) for r in rows]), train_s=train_s, pids=np.array(pids))
    log(f"  {spec_name}/{m} per-row log p: {time.perf_counter() - t0:.0f} s")
    if key is None:  # with --cache the disk holds them; without, only the run's own excerpts need them again
        _ROWS[memo] = rows, train_s
    return rows, train_s


_ROWS: dict = {}  # (feature set, method, participants) -> per-row log p of this run, for --excerpts


def excerpts(feats, spec_name: str, methods: list[str], lengths: list[float], cache: Path | None, log,
             cached_only: bool = False) -> None:
    """Identification from consecutive excerpts of L seconds of each test session (dis_core.score.excerpts):
    every method's table, then each flow minus each baseline and the reference, paired over participants."""
    pids = scored(feats)
    if len(pids) < 2:
        return
    spec = SPECS[spec_name]
    w, hop = (spec.window_s, spec.hop_s) if spec.window != "none" else (0.0, 0.0)
    rows = {m: None if m == "nn" else _rows_cached(feats, pids, spec_name, m, cache, log, cached_only)[0]
            for m in methods}
    for m in methods:  # used: the next feature set's need not sit beside them in memory
        _ROWS.pop((spec_name, m, tuple(pids)), None)
    methods = [m for m in methods if m == "nn" or rows[m] is not None]
    n = len(pids)
    if not methods:
        return
    print(f"excerpts of the test session, {spec_name}: top-1 = mean over people of the share of their excerpts "
          f"whose own model scores highest among all {n} (chance {1 / n:.3f}); AUC/EER on each excerpt's t-norm "
          "scores, each person weighing as one; 95% bootstrap over participants; p unadjusted")
    for length in lengths:
        labels = [excerpt_labels(feats[p]["test"].times, feats[p]["test"].video, length, w, hop, feats[p]["test"].spans)
                  for p in pids]
        people = sum(bool((lab >= 0).any()) for lab in labels)
        if people < 2:
            print(f"  {length:g} s: {people} of {n} people have an excerpt of that length; skipped")
            continue
        ex = {}
        for m in methods:
            if rows[m] is None:
                owner = np.concatenate([np.full(len(np.unique(lab[lab >= 0])), j) for j, lab in enumerate(labels)])
                test = [feats[p]["test"][0][lab == e] for p, lab in zip(pids, labels) for e in np.unique(lab[lab >= 0])]
                ex[m] = Excerpts(nn_scores(feats, pids, test), owner.astype(np.int64))
            else:
                ex[m] = excerpt_scores(rows[m], labels)
        k = ex[methods[0]].s.shape[1]
        per = np.mean([np.bincount(lab[lab >= 0]).mean() for lab in labels if (lab >= 0).any()])
        print(f"  {length:g} s: {k} excerpts of {people} of {n} people, {per:.1f} rows each on average")
        pairs = [(a, b) for a in methods if a in FLOW_METHODS for b in methods if b not in FLOW_METHODS]  # baselines, reference
        mrows, comps = excerpt_rows(ex, n, pairs)
        for x in mrows:
            print(f"{spec_name + '/' + x['method']:22s} {length:4.0f} s  "
                  + "  ".join(f"{key} {x[key]:.3f} [{x[key + '_lo']:.3f}, {x[key + '_hi']:.3f}]" for key in ("top1", "auc", "eer")))
        for c in comps:
            print(f"    {c['a']} - {c['b']} at {length:g} s: " + "; ".join(
                f"{key} {st.signed(c[key + '_diff'], 3)} [{st.signed(c[key + '_diff_lo'], 3)}, {st.signed(c[key + '_diff_hi'], 3)}] p {st.p_text(c[key + '_p'])}"
                for key in ("top1", "auc", "eer")))


def row(r: Result) -> str:
    n = len(r.s)
    ident = identification(r.s)
    ver = verification(tnorm(r.s))
    h = headline_intervals(r.s)
    return (f"{r.name:22s} {n:3d}  {ident['top1']:.3f} [{h['top1_lo']:.3f}, {h['top1_hi']:.3f}]  {1 / n:.3f}  "
            f"{ver['auc']:.3f} [{h['auc_lo']:.3f}, {h['auc_hi']:.3f}]  {ver['eer']:.3f} [{h['eer_lo']:.3f}, {h['eer_hi']:.3f}]"
            f"  {r.usable:7.0f}  {r.train_s:6.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a `dis extract` output folder")
    ap.add_argument("--manifest", type=Path, help="the cohort manifest (default: the one RUN/run.json records, "
                    "else RUN/../cohort/manifest.csv)")
    ap.add_argument("--only", default="frame,lags,spectrum,spectrum_raw,windows")
    ap.add_argument("--methods", default="", help="only these methods (e.g. gaussian,ar,nn); default all")
    ap.add_argument("--cache", type=Path, help="keep score matrices here and reuse them")
    ap.add_argument("--truth", action="store_true", help="use the phantom truth instead of MediaPipe (ceiling)")
    ap.add_argument("--partial", action="store_true", help="use the participants extracted so far")
    ap.add_argument("--cached-only", action="store_true", help="print what --cache holds; train nothing")
    ap.add_argument("--flow-seed", type=int, help="every flow's initialisation seed (default: each flow's own)")
    ap.add_argument("--excerpts", default="", help="also identify from excerpts of the test session of these "
                    "lengths in seconds (e.g. 8,16,30): each --only set, with the --methods given")
    a = ap.parse_args()
    bad = [n for n in a.only.split(",") if n not in METHODS]
    if bad:  # a KeyError traceback after loading every video
        ap.error(f"--only: unknown set(s) {', '.join(bad)} (these are {', '.join(METHODS)})")
    known = {m for ms in METHODS.values() for m in ms}
    bad = [m for m in a.methods.split(",") if a.methods and m not in known]
    if bad:  # an empty table and exit 0
        ap.error(f"--methods: unknown method(s) {', '.join(bad)} (these are {', '.join(sorted(known))})")
    offered = {m for n in a.only.split(",") for m in METHODS[n]}
    if a.methods and not offered & set(a.methods.split(",")):
        ap.error(f"--methods {a.methods}: none is a method of --only {a.only} (these offer {', '.join(sorted(offered))})")
    try:  # before anything is trained (an '8s' stopped a full run at its end)
        lengths = [float(v) for v in a.excerpts.split(",")] if a.excerpts else []
    except ValueError:
        ap.error(f"--excerpts {a.excerpts!r}: seconds, e.g. 8,16,30")
    if any(not np.isfinite(v) or v <= 0 for v in lengths):
        ap.error(f"--excerpts {a.excerpts!r}: lengths above 0 s")
    global FLOW_SEED
    FLOW_SEED = a.flow_seed
    record = json.loads((a.run / "run.json").read_text()) if (a.run / "run.json").is_file() else {}
    recorded = record.get("manifest")
    manifest = a.manifest or (Path(recorded) if recorded else a.run.parent / "cohort" / "manifest.csv")
    if a.cache:
        a.cache.mkdir(parents=True, exist_ok=True)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    try:
        rule = ((record.get("plan") or {}).get("cohort") or {}).get("split", {}).get("rule", "auto")
        expect = None
        plan = _recorded_plan(record)
        if plan is not None:  # the run's inputs: its face model, configuration, and this DIS's extractor
            if not a.manifest:  # the run's own manifest, as the stages read it: refused when edited since
                plan.check_manifest()
            expect = plan.extraction_expect()
        videos, left = load_videos(a.run, manifest, a.truth, a.partial, rule, expect)
    except (DISError, OSError) as e:  # a missing run or manifest: one line, not a traceback
        sys.exit(f"error: {e}")
    manifest_sha256 = sha256_file(manifest)  # the rows just loaded, named in summary.json
    results: list[Result] = []
    for name in a.only.split(","):
        ms = [m for m in METHODS[name] if not a.methods or m in a.methods.split(",")]
        if ms:
            results += evaluate(features(videos, SPECS[name]), name, ms, a.cache, log, a.cached_only,
                                keep_rows=bool(a.excerpts))
    src = "truth (phantom ceiling)" if a.truth else "MediaPipe"
    print(f"identity from head motion, {len(videos)} participants, {src}; split: {SPLIT_WORDS}")
    for why in sorted(set(left.values())):
        print(f"left out: {sum(w == why for w in left.values())} participant(s) with {why}: "
              + ", ".join(sorted(p for p, w in left.items() if w == why)))
    print("score: trimmed mean log p (flow, gaussian, ar) or -distance of session spectra (nn); AUC/EER on t-norm")
    print(f"{'feature set/method':22s} {'N':>3s}  top-1 [95% CI]          chance AUC [95% CI]          "
          f"EER [95% CI]          usable/video train s/person")
    for r in results:
        print(row(r))
    method = lambda r: r.name.split("/")[1]  # noqa: E731
    flows = [r for r in results if method(r) in FLOW_METHODS]
    bases = [r for r in results if method(r) not in FLOW_METHODS + REFERENCES]
    refs = [r for r in results if method(r) in REFERENCES]
    per_frame = [r for r in bases if SPECS[r.name.split("/")[0]].window == "none"]  # one row per frame
    key = lambda r: (identification(r.s)["top1"], -verification(tnorm(r.s))["eer"])  # noqa: E731
    family: list[dict] = []
    if flows:
        bf = max(flows, key=key)
        for what, pool in (("best baseline", bases), ("best per-frame baseline", per_frame), ("reference", refs)):
            if not pool:
                continue
            bb = max(pool, key=key)
            c = paired(bf, bb)
            if c is None:
                print(f"best flow {bf.name} - {what} {bb.name}: not compared (they scored other participants)")
                continue
            print(f"best flow {bf.name} - {what} {bb.name} (both chosen on these scores: p unadjusted for the "
                  f"choice): {diff_text(c)}; McNemar n10={c['top1_mcnemar_n10']:.0f} n01={c['top1_mcnemar_n01']:.0f} "
                  f"p {st.p_text(c['top1_mcnemar_p'])}")
        # the pre-specified family: every flow against every density baseline of its own feature set, Holm-adjusted
        fam = [(f, b) for f in flows for b in bases if f.name.split("/")[0] == b.name.split("/")[0] and f.pids == b.pids]
        # the draws the family needs (1,000 a comparison capped every Holm p at 44 x 2 / 1001 = 0.088 > 0.05)
        draws = st.draws_for_family(2 * len(fam))
        fam = [(f, b, paired(f, b, draws)) for f, b in fam]
        if fam:
            ph = st.holm([p for _, _, c in fam for p in (c["top1_p"], c["eer_p"])])
            print(f"each flow - each baseline of its feature set, paired over participants ({2 * len(fam)} tests, "
                  f"Holm-adjusted over top-1 and EER; {draws:,} draws):")
            for k, (f, b, c) in enumerate(fam):
                print(f"  {f.name} - {b.name}: {diff_text(c)}; Holm p top-1 {st.p_text(ph[2 * k])}, EER {st.p_text(ph[2 * k + 1])}")
                family.append({"flow": f.name, "baseline": b.name, **{k2: float(v) for k2, v in c.items()},
                               "top1_p_holm": float(ph[2 * k]), "eer_p_holm": float(ph[2 * k + 1])})
    for name in (a.only.split(",") if a.excerpts else []):
        ms = [m for m in METHODS[name] if not a.methods or m in a.methods.split(",")]
        if ms:
            excerpts(features(videos, SPECS[name]), name, ms, lengths, a.cache, log, a.cached_only)
    if a.cache and not a.cached_only:  # the record of a run that computed: a --cached-only print leaves it
        model = record.get("plan", {}).get("model", {})
        prov = script_provenance(vars(a), run=str(a.run), manifest=str(manifest),
                                 manifest_sha256=manifest_sha256, model_sha256=model.get("sha256", ""),
                                 source=src, split=SPLIT_WORDS, split_rule=rule, left_out=left)
        write_text_atomic(a.cache / "summary.json", json.dumps({"provenance": prov, "results": {
            r.name: {**identification(r.s), **{k: float(v) for k, v in headline_intervals(r.s).items()},
                     "eer": float(verification(tnorm(r.s))["eer"]), "auc": float(verification(tnorm(r.s))["auc"]),
                     "usable_per_video": r.usable, "train_s": r.train_s, "participants": list(r.pids)}
            for r in results}, "flow_vs_baseline": family}, indent=2, default=str))


if __name__ == "__main__":
    main()
