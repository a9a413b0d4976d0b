"""RemoteCLIP Explorer: the Streamlit entry point (``streamlit run app/Home.py``); pages are in app/views/."""

from pathlib import Path

import streamlit as st

from app import widgets

# a local file: Streamlit fetches emoji and material favicons from the internet
st.set_page_config(
    page_title="RemoteCLIP Explorer",
    page_icon=str(Path(__file__).parent / "static" / "favicon.png"),
    layout="wide",
)

pages = st.navigation(
    [
        st.Page("views/search.py", title="Search", icon=":material/search:", default=True),
        st.Page("views/count.py", title="Count", icon=":material/pin:"),
        st.Page("views/classify.py", title="Classify", icon=":material/category:"),
        st.Page("views/change.py", title="Change", icon=":material/compare:"),
        st.Page("views/library.py", title="Library", icon=":material/photo_library:"),
    ]
)
st.sidebar.caption("RemoteCLIP Explorer · search, count and label imagery in plain English")
if widgets.model_picker() is None:
    st.stop()
pages.run()
