"""Streamlit pages of RemoteCLIP Explorer (render only: logic lives in the packages below)."""
