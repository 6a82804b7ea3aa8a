"""Loss and validation curves as CSV (appended as training goes) and a PNG redrawn from them."""

import csv
from pathlib import Path


class CsvLog:
    """Append rows to a CSV file; on resume, rows past the resumed step are dropped first."""

    def __init__(self, path: Path, fields: list[str], resume_step: int | None = None):
        self.path = path
        self.fields = fields
        rows = []
        if resume_step is not None and path.exists():
            with path.open(newline='') as handle:
                rows = [row for row in csv.DictReader(handle) if int(row['step']) <= resume_step]
        with path.open('w', newline='') as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows({name: row.get(name, '') for name in fields} for row in rows)

    def append(self, row: dict) -> None:
        with self.path.open('a', newline='') as handle:
            csv.DictWriter(handle, fieldnames=self.fields).writerow(
                {name: row.get(name, '') for name in self.fields})


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline='') as handle:
        return list(csv.DictReader(handle))


def plot_curves(loss_csv: Path, val_csv: Path, png: Path) -> None:
    """Draw the training loss (left) and validation PSNR/SSIM (right) into one PNG."""
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot

    losses, validations = read_csv(loss_csv), read_csv(val_csv)
    figure, (loss_axes, val_axes) = pyplot.subplots(1, 2, figsize=(11, 4))
    values = [float(row['loss']) for row in losses]
    if losses:
        loss_axes.plot([int(row['step']) for row in losses], values, lw=0.8)
    # The log terms (`log_l1`, `log_mse`) make the total negative, which a log axis cannot show.
    scale = 'log' if values and min(values) > 0 else 'linear'
    loss_axes.set(xlabel='step', ylabel='training loss', yscale=scale, title='loss')
    if validations:
        steps = [int(row['step']) for row in validations]
        val_axes.plot(steps, [float(row['psnr']) for row in validations], 'o-', label='PSNR')
        val_axes.plot(steps, [float(row['psnr_rainy']) for row in validations], '--',
                      label='PSNR of rainy input')
        val_axes.set(xlabel='step', ylabel='PSNR (dB)', title='validation')
        ssim_axes = val_axes.twinx()
        ssim_axes.plot(steps, [float(row['ssim']) for row in validations], 's-', color='C2',
                       label='SSIM')
        ssim_axes.set_ylabel('SSIM')
        val_axes.legend(loc='lower right')
    figure.tight_layout()
    figure.savefig(png, dpi=90)
    pyplot.close(figure)
