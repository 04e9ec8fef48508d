"""The statuses a trial or a confirmation run ends with (no torch here: the analysis reads them).

    ok          trained every epoch (or was stopped early by ASHA) to a finite loss
    collapsed   trained every epoch, but its loss is within COLLAPSE_MARGIN of the mean-image
                baseline, or above it: it learned nothing an average image does not give
    diverged    a loss became NaN/inf; reported as a large finite loss so schedulers can rank it
    infeasible  no widths meet the parameter budget: never trained
    error       the configuration or the training failed
"""
COLLAPSE_MARGIN = 0.05
DIVERGED_LOSS = 1e6     # reported instead of NaN/inf: large, finite, sortable by schedulers
FINISHED = ("ok", "collapsed")   # runs whose loss is real: in means, fronts and tables
