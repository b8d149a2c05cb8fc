"""The human-rating loop: an offline HTML page to rate a dataset's inpaintings, and the merge of raters' files
into the labels ``prefpaint train reward`` reads.

>>> from prefpaint_apps.rate import write_rating_page, import_ratings
>>> write_rating_page("DATA")                          # DATA/rate.html: open it in a browser, rate, export
>>> report = import_ratings("DATA", ["alice.json", "bob.json"])   # DATA/labels.json + agreement
"""

from .checks import validate
from .dataset import RateDataset, scan_dataset
from .merge import CRITERIA, WEIGHTS, ImportReport, import_ratings, read_ratings_file
from .page import PAGE_NAME, is_rating_page, write_rating_page

__all__ = ["CRITERIA", "PAGE_NAME", "WEIGHTS", "ImportReport", "RateDataset", "import_ratings", "is_rating_page",
           "read_ratings_file", "scan_dataset", "validate", "write_rating_page"]
