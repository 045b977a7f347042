"""Java ``MethodHandle`` loops that keep per-hit work inside the JVM.

pyjnius turns every element of a Java array into a Python proxy (a JNI round trip each) and
takes the GIL back after every Java call. These handles, built once per retriever and reused,
run whole loops in ONE Java call and hand back plain ``int[]``: the document numbers of a
top-k (:func:`doc_numbers_handle`), or of a whole chunk of queries (:func:`top_numbers_loop`).
"""

from __future__ import annotations

from typing import Any


def doc_numbers_handle() -> Any:
    """A Java ``MethodHandle`` ``(TopDocs) -> int[]`` of ``scoreDocs[i].doc`` (build once, reuse).

    pyjnius turns every element of a ``ScoreDoc[]`` into a Python proxy (a JNI round trip each);
    this handle runs the loop inside the JVM, so a top-1000 crosses JNI as one ``int[]``.
    """
    from jnius import autoclass

    handles, types = autoclass("java.lang.invoke.MethodHandles"), autoclass("java.lang.invoke.MethodType")
    cls = autoclass("java.lang.Class")
    top_docs, score_docs = cls.forName("org.apache.lucene.search.TopDocs"), cls.forName("[Lorg.apache.lucene.search.ScoreDoc;")
    score_doc, ints = cls.forName("org.apache.lucene.search.ScoreDoc"), cls.forName("[I")
    int_type, void_type = autoclass("java.lang.Integer").TYPE, autoclass("java.lang.Void").TYPE
    lookup = handles.publicLookup()
    get_hits = lookup.findGetter(top_docs, "scoreDocs", score_docs)  # (TopDocs) ScoreDoc[]
    doc_at = handles.filterReturnValue(  # (TopDocs, int) int = top.scoreDocs[i].doc
        handles.filterArguments(handles.arrayElementGetter(score_docs), 0, get_hits),
        lookup.findGetter(score_doc, "doc", int_type))
    store = handles.collectArguments(handles.arrayElementSetter(ints), 2, doc_at)  # (int[], int, TopDocs, int)
    store = handles.permuteArguments(store, types.methodType(void_type, ints, int_type, top_docs), 0, 1, 2, 1)
    body = handles.foldArguments(handles.dropArguments(handles.identity(ints), 1, int_type, top_docs), store)
    count = handles.filterReturnValue(get_hits, handles.arrayLength(score_docs))  # (TopDocs) int
    init = handles.filterReturnValue(count, handles.arrayConstructor(ints))  # (TopDocs) int[]
    return handles.countedLoop(count, init, body)


def top_numbers_loop(searcher: Any, generator: Any, analyzer: Any, sort: Any, k: int, numbers: Any) -> Any:
    """A Java ``MethodHandle`` ``(List<String>) -> int[][]``: each query's top-``k`` document numbers.

    The whole chunk runs in ONE Java call: query building, ``IndexSearcher.search(query, k,
    sort, true)`` and the ``int[]`` read-back ``numbers`` (:func:`doc_numbers_handle`, the one
    the caller already built) for every text. The per-query path makes four JNI calls per query
    and takes the GIL back after each, competing with the service's event loop every time; a
    chunk takes it back once (measured in docs/performance.md). A query Lucene rejects gets
    ``null``.
    """
    from jnius import autoclass

    handles, types = autoclass("java.lang.invoke.MethodHandles"), autoclass("java.lang.invoke.MethodType")
    cls = autoclass("java.lang.Class")
    string, text_list = cls.forName("java.lang.String"), cls.forName("java.util.List")
    query, top_docs = cls.forName("org.apache.lucene.search.Query"), cls.forName("org.apache.lucene.search.TopDocs")
    ints, int_rows = cls.forName("[I"), cls.forName("[[I")
    int_type, void_type = autoclass("java.lang.Integer").TYPE, autoclass("java.lang.Void").TYPE
    boolean_type = autoclass("java.lang.Boolean").TYPE
    lookup = handles.publicLookup()
    build = lookup.findVirtual(generator.getClass(), "buildQuery", types.methodType(
        query, string, cls.forName("org.apache.lucene.analysis.Analyzer"), string))
    build = handles.insertArguments(build, 0, generator, "contents", analyzer)  # (String) Query
    search = lookup.findVirtual(searcher.getClass(), "search", types.methodType(
        cls.forName("org.apache.lucene.search.TopFieldDocs"), query, int_type, sort.getClass(),
        boolean_type)).bindTo(searcher)  # (Query, int, Sort, boolean)
    true = handles.explicitCastArguments(handles.constant(int_type, 1), types.methodType(boolean_type))  # pyjnius makes True an Integer
    for constant in (handles.constant(int_type, int(k)), handles.constant(sort.getClass(), sort), true):
        search = handles.collectArguments(search, 1, constant)
    search = search.asType(types.methodType(top_docs, query))  # (Query) TopDocs
    one = handles.filterReturnValue(handles.filterReturnValue(build, search), numbers)  # (String) int[]
    rejected = cls.forName("java.lang.Exception")
    one = handles.catchException(one, rejected, handles.dropArguments(handles.constant(ints, None), 0, rejected, string))
    text_at = lookup.findVirtual(text_list, "get", types.methodType(cls.forName("java.lang.Object"), int_type))
    row_at = handles.filterReturnValue(text_at.asType(types.methodType(string, text_list, int_type)), one)  # (List, int) int[]
    store = handles.collectArguments(handles.arrayElementSetter(int_rows), 2, row_at)  # (int[][], int, List, int)
    store = handles.permuteArguments(store, types.methodType(void_type, int_rows, int_type, text_list), 0, 1, 2, 1)
    body = handles.foldArguments(handles.dropArguments(handles.identity(int_rows), 1, int_type, text_list), store)
    size = lookup.findVirtual(text_list, "size", types.methodType(int_type))
    return handles.countedLoop(size, handles.filterReturnValue(size, handles.arrayConstructor(int_rows)), body)
