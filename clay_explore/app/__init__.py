"""The Streamlit app: the router and Home (``main``), the pages (``pages/``) and their shared glue."""
