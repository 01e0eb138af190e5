"""clay-explore's Streamlit entry point for ``streamlit run app.py`` in a checkout.

The app lives in the package (``clay_explore/app/main.py``, its pages in ``clay_explore/app/pages``);
``clay-explore app`` starts the same app from an installed package. This file and ``pages/`` are shims.
"""

from clay_explore.app.main import run

run()
