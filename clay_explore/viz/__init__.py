"""Display without Streamlit: colours, RGB rendering, thumbnails, plotly figures and folium maps."""
